output "cluster_name" {
  description = "EKS cluster (aws eks update-kubeconfig --name ...)."
  value       = module.flightdeck.cluster_name
}

output "bucket_names" {
  description = "S3 buckets by purpose."
  value       = module.flightdeck.bucket_names
}

output "ecr_repositories" {
  description = "ECR repository URLs of the images."
  value       = module.flightdeck.ecr_repositories
}

output "redis_endpoint" {
  description = "Feast online store (FLIGHTDECK_REDIS_URL), TLS."
  value       = module.flightdeck.redis_endpoint
}

output "airflow_db_endpoint" {
  description = "Airflow metadata database."
  value       = module.flightdeck.airflow_db_endpoint
}

output "workload_role_arns" {
  description = "IRSA roles by workload."
  value       = module.flightdeck.workload_role_arns
}

output "triton_service" {
  description = "Triton's in-cluster address."
  value       = module.flightdeck.triton_service
}

output "pushgateway_url" {
  description = "In-cluster URL of the Pushgateway the monitor stage pushes to."
  value       = module.flightdeck.pushgateway_url
}

output "pipelines_service_account" {
  description = "KFP runs' service account (namespace:name), for flightdeck kfp submit --service-account."
  value       = module.flightdeck.pipelines_service_account
}
