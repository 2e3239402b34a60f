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
}

variable "subnet_ids" {
  description = "Private subnets for the DB subnet group (two zones at least)."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "RDS needs subnets in at least two availability zones."
  }
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect on 5432 (the EKS nodes)."
  type        = list(string)
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
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
