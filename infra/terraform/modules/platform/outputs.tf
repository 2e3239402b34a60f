output "namespaces" {
  description = "Namespaces created, with their enforced Pod Security Standards level."
  value       = local.namespaces
}

output "triton_service" {
  description = "In-cluster address of Triton's Service (HTTP 8000, gRPC 8001, metrics 8002)."
  value       = "triton.${kubernetes_namespace_v1.this["flightdeck"].metadata[0].name}.svc.cluster.local"
}

output "triton_admin_key_secret" {
  description = "namespace/name of the Secret with Triton's admin key."
  value       = "${kubernetes_secret_v1.triton_admin_key.metadata[0].namespace}/${kubernetes_secret_v1.triton_admin_key.metadata[0].name}"
}
