output "repository_urls" {
  description = "Repository URL by name; FLIGHTDECK_IMAGE_REGISTRY is the part before the first /."
  value       = { for k, r in aws_ecr_repository.this : k => r.repository_url }
}

output "repository_arns" {
  description = "Repository ARN by name."
  value       = { for k, r in aws_ecr_repository.this : k => r.arn }
}
