output "primary_endpoint" {
  description = "host:port of the primary (TLS); FLIGHTDECK_REDIS_URL."
  value       = "${aws_elasticache_replication_group.this.primary_endpoint_address}:6379"
}

output "auth_token" {
  description = "The AUTH token (sensitive): modules/platform puts it in the flightdeck-redis-auth Kubernetes Secret (FLIGHTDECK_REDIS_PASSWORD of the pods that open the online store)."
  value       = random_password.auth.result
  sensitive   = true
}

output "auth_token_secret_arn" {
  description = "Secrets Manager secret holding the AUTH token."
  value       = aws_secretsmanager_secret.auth.arn
}

output "security_group_id" {
  description = "Security group of the cache."
  value       = aws_security_group.redis.id
}
