# One flightdeck environment in one AWS account and region: the composition of the other modules.
# The roots in environments/ call it once each with their sizes; it inherits their provider
# configurations (aws, and kubernetes/helm/kustomization pointed at the cluster made here).
locals {
  name   = "flightdeck-${var.environment}"
  images = ["flightdeck/stage", "flightdeck/train", "flightdeck/triton", "flightdeck/airflow"] # containers/images.yaml
}

data "aws_region" "current" {}

# Kubernetes API credentials for the providers (outputs kubernetes, kubeconfig): a token from
# `aws eks get-token`, so nothing long-lived is stored in the state.
locals {
  get_token = {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", data.aws_region.current.name]
  }
}

module "kms_platform" {
  source                = "../kms"
  name                  = "${local.name}-platform"
  description           = "flightdeck ${var.environment}: EKS secrets, logs, ECR, RDS, ElastiCache"
  allow_cloudwatch_logs = true
  tags                  = var.tags
}

module "kms_data" {
  source      = "../kms"
  name        = "${local.name}-data"
  description = "flightdeck ${var.environment}: S3 data, artifacts and models"
  tags        = var.tags
}

module "network" {
  source             = "../network"
  name               = local.name
  cidr_block         = var.vpc_cidr
  availability_zones = var.availability_zones
  single_nat_gateway = var.single_nat_gateway
  kms_key_arn        = module.kms_platform.key_arn
  tags               = var.tags
}

module "eks" {
  source              = "../eks"
  name                = local.name
  vpc_id              = module.network.vpc_id
  subnet_ids          = module.network.private_subnet_ids
  public_access_cidrs = var.eks_public_access_cidrs
  kms_key_arn         = module.kms_platform.key_arn
  system_node_group   = var.system_node_group
  gpu_node_group      = var.gpu_node_group
  tags                = var.tags
}

module "storage" {
  source        = "../storage"
  name          = local.name
  kms_key_arn   = module.kms_data.key_arn
  force_destroy = var.force_destroy_buckets
  tags          = var.tags
}

module "ecr" {
  source       = "../ecr"
  repositories = toset(local.images)
  kms_key_arn  = module.kms_platform.key_arn
  tags         = var.tags
}

module "online_store" {
  source                    = "../online_store"
  name                      = local.name
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [module.eks.cluster_security_group_id]
  node_type                 = var.redis_node_type
  replicas                  = var.redis_replicas
  kms_key_arn               = module.kms_platform.key_arn
  tags                      = var.tags
}

module "airflow_db" {
  source                    = "../airflow_db"
  name                      = "${local.name}-airflow"
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.private_subnet_ids
  client_security_group_ids = [module.eks.cluster_security_group_id]
  instance_class            = var.db_instance_class
  multi_az                  = var.db_multi_az
  deletion_protection       = var.db_deletion_protection
  kms_key_arn               = module.kms_platform.key_arn
  tags                      = var.tags
}

module "iam" {
  source            = "../iam"
  name              = local.name
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer       = module.eks.oidc_issuer
  bucket_arns       = module.storage.bucket_arns
  kms_key_arn       = module.kms_data.key_arn
  # The cluster autoscaler's role may resize this cluster's node groups only.
  cluster_name            = module.eks.cluster_name
  node_group_arns         = module.eks.node_group_arns
  autoscaling_group_names = module.eks.autoscaling_group_names
  tags                    = var.tags
}

module "platform" {
  source       = "../platform"
  name         = local.name
  role_arns    = module.iam.role_arns
  bucket_names = module.storage.bucket_names
  # The registry host: <account>.dkr.ecr.<region>.amazonaws.com, the part before the repository.
  image_registry      = split("/", module.ecr.repository_urls["flightdeck/triton"])[0]
  image_tag           = var.image_tag
  triton_image_digest = var.triton_image_digest
  # The stage pods' settings (the flightdeck-settings ConfigMap).
  aws_region     = data.aws_region.current.name
  redis_endpoint = module.online_store.primary_endpoint
  # Its AUTH token, for the flightdeck-redis-auth Secret (sensitive; never in the ConfigMap).
  redis_auth_token = module.online_store.auth_token
  # The tune stage's study storage (sensitive; the flightdeck-tuning-db Secret).
  tuning_storage_url = var.tuning_storage_url
  # The cluster autoscaler, and Triton's replica counts (sized against the GPU node group here).
  cluster_name       = module.eks.cluster_name
  kubernetes_version = module.eks.kubernetes_version
  triton_replicas    = var.triton_replicas
  # The alerts' runbook links (infra/k8s/monitoring).
  runbook_base_url = var.runbook_base_url
  depends_on       = [module.eks]
}
