# The flightdeck platform in one AWS account and region. dev and prod share this file's shape
# and differ in terraform.tfvars only.
locals {
  name = "flightdeck-${var.environment}"
  # Every taggable resource gets these, through the modules' tags and the provider's default_tags.
  tags = {
    Project     = "flightdeck"
    Environment = var.environment
    Owner       = var.owner
    ManagedBy   = "terraform"
  }
  images = ["flightdeck/stage", "flightdeck/train", "flightdeck/triton"] # containers/images.yaml
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}

data "aws_caller_identity" "current" {}

provider "kubernetes" {
  host                   = module.eks.cluster_endpoint
  cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region]
  }
}

provider "helm" {
  kubernetes {
    host                   = module.eks.cluster_endpoint
    cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)
    exec {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region]
    }
  }
}

provider "kustomization" {
  kubeconfig_raw = yamlencode({
    apiVersion      = "v1"
    kind            = "Config"
    current-context = "eks"
    clusters        = [{ name = "eks", cluster = { server = module.eks.cluster_endpoint, certificate-authority-data = module.eks.cluster_certificate_authority_data } }]
    contexts        = [{ name = "eks", context = { cluster = "eks", user = "eks" } }]
    users           = [{ name = "eks", user = { exec = { apiVersion = "client.authentication.k8s.io/v1beta1", command = "aws", args = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region] } } }]
    preferences     = {}
  })
}

module "kms_platform" {
  source                = "../../modules/kms"
  name                  = "${local.name}-platform"
  description           = "flightdeck ${var.environment}: EKS secrets, logs, ECR, RDS, ElastiCache"
  allow_cloudwatch_logs = true
  tags                  = local.tags
}

module "kms_data" {
  source      = "../../modules/kms"
  name        = "${local.name}-data"
  description = "flightdeck ${var.environment}: S3 data, artifacts and models"
  tags        = local.tags
}

module "network" {
  source             = "../../modules/network"
  name               = local.name
  cidr_block         = var.vpc_cidr
  availability_zones = var.availability_zones
  single_nat_gateway = var.single_nat_gateway
  kms_key_arn        = module.kms_platform.key_arn
  tags               = local.tags
}

module "eks" {
  source              = "../../modules/eks"
  name                = local.name
  vpc_id              = module.network.vpc_id
  subnet_ids          = module.network.private_subnet_ids
  public_access_cidrs = var.eks_public_access_cidrs
  kms_key_arn         = module.kms_platform.key_arn
  system_node_group   = var.system_node_group
  gpu_node_group      = var.gpu_node_group
  tags                = local.tags
}

module "storage" {
  source        = "../../modules/storage"
  name          = local.name
  kms_key_arn   = module.kms_data.key_arn
  force_destroy = var.force_destroy_buckets
  tags          = local.tags
}

module "ecr" {
  source       = "../../modules/ecr"
  repositories = toset(local.images)
  kms_key_arn  = module.kms_platform.key_arn
  tags         = local.tags
}

module "online_store" {
  source                    = "../../modules/online_store"
  name                      = local.name
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [module.eks.cluster_security_group_id]
  node_type                 = var.redis_node_type
  replicas                  = var.redis_replicas
  kms_key_arn               = module.kms_platform.key_arn
  tags                      = local.tags
}

module "airflow_db" {
  source                    = "../../modules/airflow_db"
  name                      = "${local.name}-airflow"
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [module.eks.cluster_security_group_id]
  instance_class            = var.db_instance_class
  multi_az                  = var.db_multi_az
  deletion_protection       = var.db_deletion_protection
  kms_key_arn               = module.kms_platform.key_arn
  tags                      = local.tags
}

module "iam" {
  source            = "../../modules/iam"
  name              = local.name
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer       = module.eks.oidc_issuer
  bucket_arns       = module.storage.bucket_arns
  kms_key_arn       = module.kms_data.key_arn
  tags              = local.tags
}

module "platform" {
  source              = "../../modules/platform"
  name                = local.name
  role_arns           = module.iam.role_arns
  bucket_names        = module.storage.bucket_names
  image_registry      = "${data.aws_caller_identity.current.account_id}.dkr.ecr.${var.region}.amazonaws.com"
  triton_image_digest = var.triton_image_digest
  depends_on          = [module.eks]
}
