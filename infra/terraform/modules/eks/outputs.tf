output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA certificate of the API endpoint."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "Security group EKS attaches to the control plane and the managed nodes."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "oidc_provider_arn" {
  description = "ARN of the IAM OIDC provider, for IRSA trust policies."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "oidc_issuer" {
  description = "OIDC issuer host and path (without https://), the prefix of IRSA condition keys."
  value       = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
}

output "gpu_taint" {
  description = "The taint on the GPU nodes; GPU pods must tolerate it."
  value       = one(aws_eks_node_group.gpu.taint)
}

output "kubernetes_version" {
  description = "Kubernetes MAJOR.MINOR of the control plane (the cluster autoscaler's image follows it)."
  value       = aws_eks_cluster.this.version
}

output "node_group_arns" {
  description = "ARNs of the managed node groups (the cluster autoscaler may describe exactly these)."
  value       = [aws_eks_node_group.system.arn, aws_eks_node_group.gpu.arn]
}

output "autoscaling_group_names" {
  description = "Names of the node groups' Auto Scaling groups (the cluster autoscaler may resize exactly these)."
  value       = flatten([for g in [aws_eks_node_group.system, aws_eks_node_group.gpu] : g.resources[0].autoscaling_groups[*].name])
}
