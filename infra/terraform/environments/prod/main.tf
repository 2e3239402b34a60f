# The prod environment: three zones with a NAT gateway each, a standby database with deletion
# protection, buckets that `terraform destroy` refuses to empty. How it differs from dev is the
# arguments of module "flightdeck" below; terraform.tfvars holds what changes per deployment.
locals {
  region = "us-east-1"
  # Every taggable resource gets these, through the provider's default_tags and the modules' tags.
  tags = {
    Project     = "flightdeck"
    Environment = "prod"
    Owner       = "ml-platform"
    ManagedBy   = "terraform"
  }
}

module "flightdeck" {
  source      = "../../modules/environment"
  environment = local.tags.Environment
  tags        = local.tags

  vpc_cidr           = "10.50.0.0/16"
  availability_zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
  single_nat_gateway = false

  system_node_group = {
    instance_types = ["m6i.2xlarge"]
    min_size       = 3
    max_size       = 9
    desired_size   = 3
  }
  # GPU nodes (one GPU each) for Triton and training; the cluster autoscaler (modules/platform)
  # moves the group between min and max. max = Triton's max + a rolling-update surge + one
  # training pod (modules/environment validates it).
  gpu_node_group = {
    instance_types = ["g5.2xlarge"]
    min_size       = 2
    max_size       = 6
    desired_size   = 2
  }
  # Triton: two replicas at least, the HPA may go to four; a drain evicts one at a time.
  triton_replicas = {
    min             = 2
    max             = 4
    max_unavailable = 1
  }

  redis_node_type        = "cache.r7g.large"
  redis_replicas         = 2
  db_instance_class      = "db.r6g.large"
  db_multi_az            = true
  db_deletion_protection = true
  force_destroy_buckets  = false

  eks_public_access_cidrs = var.eks_public_access_cidrs
  triton_image_digest     = var.triton_image_digest
  image_tag               = var.image_tag
  runbook_base_url        = var.runbook_base_url
}

# The module inherits these provider configurations; the Kubernetes ones reach the cluster it makes.
provider "aws" {
  region = local.region
  default_tags {
    tags = local.tags
  }
}

provider "kubernetes" {
  host                   = module.flightdeck.kubernetes.host
  cluster_ca_certificate = module.flightdeck.kubernetes.cluster_ca_certificate
  exec {
    api_version = module.flightdeck.kubernetes.exec.api_version
    command     = module.flightdeck.kubernetes.exec.command
    args        = module.flightdeck.kubernetes.exec.args
  }
}

provider "helm" {
  kubernetes {
    host                   = module.flightdeck.kubernetes.host
    cluster_ca_certificate = module.flightdeck.kubernetes.cluster_ca_certificate
    exec {
      api_version = module.flightdeck.kubernetes.exec.api_version
      command     = module.flightdeck.kubernetes.exec.command
      args        = module.flightdeck.kubernetes.exec.args
    }
  }
}

provider "kustomization" {
  kubeconfig_raw = module.flightdeck.kubeconfig
}
