variable "name" {
  description = "Replication group id and prefix of the related resources (e.g. flightdeck-dev)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC of the cache."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the cache nodes."
  type        = list(string)
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect on 6379 (the EKS nodes)."
  type        = list(string)
}

variable "node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.medium"
  validation {
    condition     = startswith(var.node_type, "cache.")
    error_message = "node_type must be an ElastiCache node type (cache.*)."
  }
}

variable "replicas" {
  description = "Read replicas besides the primary, in other zones (automatic failover and Multi-AZ need one at least)."
  type        = number
  default     = 1
  validation {
    condition     = var.replicas >= 1 && var.replicas <= 5
    error_message = "replicas must be 1-5 (automatic failover needs a replica)."
  }
}

variable "engine_version" {
  description = "Redis OSS engine version."
  type        = string
  default     = "7.1"
}

variable "snapshot_retention_days" {
  description = "Days of automatic snapshots (the online store can be rebuilt by materialize; snapshots only speed that up)."
  type        = number
  default     = 7
  validation {
    condition     = var.snapshot_retention_days >= 1 && var.snapshot_retention_days <= 35
    error_message = "snapshot_retention_days must be 1-35."
  }
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest and for the auth token secret."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
