output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Private subnets (EKS nodes, RDS, ElastiCache), one per availability zone."
  value       = [for s in aws_subnet.private : s.id]
}

output "public_subnet_ids" {
  description = "Public subnets (NAT gateways and internet-facing load balancers only)."
  value       = [for s in aws_subnet.public : s.id]
}

output "s3_endpoint_id" {
  description = "ID of the S3 gateway endpoint; bucket policies may require it."
  value       = aws_vpc_endpoint.s3.id
}
