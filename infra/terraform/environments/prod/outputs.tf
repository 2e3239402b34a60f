output "cluster_name" {
  description = "EKS cluster (aws eks update-kubeconfig --name ...)."
  value       = module.eks.cluster_name
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
