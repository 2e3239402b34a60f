output "namespaces" {
  description = "Namespaces created, with their enforced Pod Security Standards level."
  value       = local.namespaces
}

output "triton_service" {
  description = "In-cluster address of Triton's Service (HTTP 8000, gRPC 8001, metrics 8002)."
  value       = "triton.${kubernetes_namespace_v1.this["flightdeck"].metadata[0].name}.svc.cluster.local"
}

output "triton_admin_key_secret" {
  description = "namespace/name of the Secrets with Triton's admin key (the flightdeck and KFP namespaces)."
  value       = [for s in kubernetes_secret_v1.triton_admin_key : "${s.metadata[0].namespace}/${s.metadata[0].name}"]
}

output "redis_auth_secret" {
  description = "namespace/name of the Secrets with the Redis online store's AUTH token (key password; the flightdeck and KFP namespaces)."
  value       = [for s in kubernetes_secret_v1.redis_auth : "${s.metadata[0].namespace}/${s.metadata[0].name}"]
}

output "settings_config_maps" {
  description = "namespace/name of the ConfigMaps with the stage pods' FLIGHTDECK_* settings."
  value       = [for c in kubernetes_config_map_v1.settings : "${c.metadata[0].namespace}/${c.metadata[0].name}"]
}

output "pipelines_service_account" {
  description = "namespace:name of the KFP runs' service account (flightdeck kfp submit --service-account)."
  value       = "${kubernetes_service_account_v1.pipelines.metadata[0].namespace}:${kubernetes_service_account_v1.pipelines.metadata[0].name}"
}

output "pushgateway_url" {
  description = "In-cluster URL of the Pushgateway the monitor stage pushes to (FLIGHTDECK_PUSHGATEWAY_URL)."
  value       = local.pushgateway_url
}
