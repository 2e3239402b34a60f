variable "environment" {
  description = "Environment name: dev or prod."
  type        = string
  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "region" {
  description = "AWS region of the whole environment."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the environment's VPC."
  type        = string
}

variable "availability_zones" {
  description = "Availability zones to use (two or three)."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One shared NAT gateway (dev) instead of one per zone (prod)."
  type        = bool
}

variable "eks_public_access_cidrs" {
  description = "CIDRs allowed to reach the EKS API from outside the VPC (operators' VPN); empty: private only."
  type        = list(string)
  default     = []
}

variable "system_node_group" {
  description = "CPU node group sizing."
  type = object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
  })
}

variable "gpu_node_group" {
  description = "GPU node group sizing (Triton, training)."
  type = object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
  })
}

variable "redis_node_type" {
  description = "ElastiCache node type of the Feast online store."
  type        = string
}

variable "redis_replicas" {
  description = "Read replicas of the online store (>= 1 gives failover)."
  type        = number
}

variable "db_instance_class" {
  description = "RDS instance class of Airflow's metadata database."
  type        = string
}

variable "db_multi_az" {
  description = "Multi-AZ standby for the Airflow database."
  type        = bool
}

variable "db_deletion_protection" {
  description = "Deletion protection of the Airflow database."
  type        = bool
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy delete non-empty buckets (dev only)."
  type        = bool
  default     = false
}

variable "triton_image_digest" {
  description = "sha256 digest of the flightdeck/triton image (containers/image-digests.json)."
  type        = string
}

variable "owner" {
  description = "Team that owns the environment (the Owner tag)."
  type        = string
}
