output "endpoint" {
  description = "host:port of the database."
  value       = aws_db_instance.this.endpoint
}

output "database_name" {
  description = "Name of Airflow's database."
  value       = aws_db_instance.this.db_name
}

output "master_user_secret_arn" {
  description = "Secrets Manager secret (managed by RDS) with the master credentials."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}
