variable "name" {
  description = "DB instance identifier and prefix of the related resources (e.g. flightdeck-dev-airflow)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,50}$", var.name))
    error_message = "name must be 3-51 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string
  validation {
    condition     = can(regex("^vpc-([0-9a-f]{8}|[0-9a-f]{17})$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc- and 8 or 17 hex digits)."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the DB subnet group (two zones at least)."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "RDS needs subnets in at least two availability zones."
  }
  validation {
    condition     = alltrue([for s in var.subnet_ids : can(regex("^subnet-([0-9a-f]{8}|[0-9a-f]{17})$", s))])
    error_message = "subnet_ids must be subnet ids (subnet- and 8 or 17 hex digits)."
  }
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect on 5432 (the EKS nodes)."
  type        = list(string)
  validation {
    condition     = length(var.client_security_group_ids) >= 1 && alltrue([for s in var.client_security_group_ids : can(regex("^sg-([0-9a-f]{8}|[0-9a-f]{17})$", s))])
    error_message = "client_security_group_ids must be one or more security group ids (sg- and 8 or 17 hex digits)."
  }
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
  validation {
    condition     = startswith(var.instance_class, "db.")
    error_message = "instance_class must be an RDS class (db.*)."
  }
}

variable "engine_version" {
  description = "PostgreSQL major version (Airflow 3 supports 13 and newer)."
  type        = string
  default     = "16"
  validation {
    condition     = tonumber(split(".", var.engine_version)[0]) >= 13
    error_message = "Airflow 3 needs PostgreSQL 13 or newer."
  }
}

variable "allocated_storage_gb" {
  description = "Initial storage in GiB; storage autoscaling goes up to 4x."
  type        = number
  default     = 50
  validation {
    condition     = var.allocated_storage_gb >= 20
    error_message = "allocated_storage_gb must be at least 20."
  }
}

variable "multi_az" {
  description = "Standby in a second zone (prod)."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14
  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be 7-35."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the instance (turn off only to tear down dev)."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "KMS key for storage, Performance Insights and the managed master password."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>), not an alias or a key id."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
  validation {
    # AWS tag limits (keys 1-128 characters, values 256, 50 per resource, aws: reserved).
    condition     = length(var.tags) <= 40 && alltrue([for k, val in var.tags : length(k) >= 1 && length(k) <= 128 && length(val) <= 256 && !startswith(lower(k), "aws:")])
    error_message = "tags: at most 40 (AWS allows 50 per resource, and some resources add their own), keys of 1-128 characters not starting with aws: (reserved), values of at most 256."
  }
}
