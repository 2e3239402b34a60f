# The dev environment: small nodes, one NAT gateway, a GPU group the autoscaler may empty, and
# buckets and database that `terraform destroy` may delete. How it differs from prod is the
# arguments of module "flightdeck" below; terraform.tfvars holds what changes per deployment.
locals {
  region = "us-east-1"
  # Every taggable resource gets these, through the provider's default_tags and the modules' tags.
  tags = {
    Project     = "flightdeck"
    Environment = "dev"
    Owner       = "ml-platform"
    ManagedBy   = "terraform"
  }
}

module "flightdeck" {
  source      = "../../modules/environment"
  environment = local.tags.Environment
  tags        = local.tags

  vpc_cidr           = "10.40.0.0/16"
  availability_zones = ["us-east-1a", "us-east-1b"]
  single_nat_gateway = true

  system_node_group = {
    instance_types = ["m6i.xlarge"]
    min_size       = 1
    max_size       = 3
    desired_size   = 2
  }
  # GPU nodes (one GPU each) for Triton and training. g5.2xlarge, not g5.xlarge: a training pod
  # asks for 4 CPUs and 16 GiB, more than a g5.xlarge can give after the kubelet's reservation.
  # The cluster autoscaler (modules/platform) moves the group between min and max: Triton's one
  # replica keeps one node while it serves; min 0 lets the group go to zero when Triton is scaled
  # to zero (`kubectl -n flightdeck scale deployment triton --replicas 0`, which also parks its HPA)
  # and a training pod brings a node back from zero. max = Triton's max + a rolling-update surge
  # + one training pod (modules/environment validates it).
  gpu_node_group = {
    instance_types = ["g5.2xlarge"]
    min_size       = 0
    max_size       = 4
    desired_size   = 1
  }
  # Triton: one replica, the HPA may add one; the PDB lets a node drain evict it (dev accepts the gap).
  triton_replicas = {
    min             = 1
    max             = 2
    max_unavailable = 1
  }

  redis_node_type        = "cache.t4g.small"
  redis_replicas         = 1 # failover needs one replica, even in dev
  db_instance_class      = "db.t4g.small"
  db_multi_az            = false
  db_deletion_protection = false
  force_destroy_buckets  = true

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
