output "role_arns" {
  description = "IRSA role ARN by workload (annotate the service account with eks.amazonaws.com/role-arn)."
  value       = { for k, r in aws_iam_role.workload : k => r.arn }
}

output "service_accounts" {
  description = "Service accounts (namespace:name) allowed to assume each workload's role."
  value       = var.service_accounts
}
