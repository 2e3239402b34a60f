output "bucket_names" {
  description = "Bucket name by purpose (data, artifacts, models, logs)."
  value       = { for k, b in aws_s3_bucket.this : k => b.bucket }
}

output "bucket_arns" {
  description = "Bucket ARN by purpose (data, artifacts, models, logs)."
  value       = { for k, b in aws_s3_bucket.this : k => b.arn }
}
