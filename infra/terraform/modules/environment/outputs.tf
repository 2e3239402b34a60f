output "cluster_name" {
  description = "EKS cluster (aws eks update-kubeconfig --name ...)."
  value       = module.eks.cluster_name
}

output "kubernetes" {
  description = "How the kubernetes and helm providers reach the cluster: API endpoint, CA certificate (PEM), the get-token exec plugin."
  value = {
    host                   = module.eks.cluster_endpoint
    cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)
    exec                   = local.get_token
  }
}

output "kubeconfig" {
  description = "The same access as a kubeconfig document (the kustomization provider takes only that)."
  value = yamlencode({
    apiVersion      = "v1"
    kind            = "Config"
    current-context = "eks"
    clusters        = [{ name = "eks", cluster = { server = module.eks.cluster_endpoint, certificate-authority-data = module.eks.cluster_certificate_authority_data } }]
    contexts        = [{ name = "eks", context = { cluster = "eks", user = "eks" } }]
    users           = [{ name = "eks", user = { exec = { apiVersion = local.get_token.api_version, command = local.get_token.command, args = local.get_token.args } } }]
    preferences     = {}
  })
}

output "bucket_names" {
  description = "S3 buckets by purpose."
  value       = module.storage.bucket_names
}

output "ecr_repositories" {
  description = "ECR repository URLs of the images."
  value       = module.ecr.repository_urls
}

output "redis_endpoint" {
  description = "Feast online store (FLIGHTDECK_REDIS_URL), TLS."
  value       = module.online_store.primary_endpoint
}

output "airflow_db_endpoint" {
  description = "Airflow metadata database."
  value       = module.airflow_db.endpoint
}

output "workload_role_arns" {
  description = "IRSA roles by workload."
  value       = module.iam.role_arns
}

output "triton_service" {
  description = "Triton's in-cluster address."
  value       = module.platform.triton_service
}

output "pushgateway_url" {
  description = "In-cluster URL of the Pushgateway the monitor stage pushes to."
  value       = module.platform.pushgateway_url
}

output "pipelines_service_account" {
  description = "KFP runs' service account (namespace:name), for flightdeck kfp submit --service-account."
  value       = module.platform.pipelines_service_account
}
