variable "name" {
  description = "Prefix of the bucket names (globally unique with the account id appended), e.g. flightdeck-dev."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "buckets" {
  description = "Buckets to create, by purpose (data, artifacts, models), with days before noncurrent object versions expire."
  type = map(object({
    noncurrent_version_expiration_days = number
  }))
  default = {
    data      = { noncurrent_version_expiration_days = 30 }
    artifacts = { noncurrent_version_expiration_days = 90 }
    models    = { noncurrent_version_expiration_days = 365 }
  }
  validation {
    condition     = alltrue([for k in ["data", "artifacts", "models"] : contains(keys(var.buckets), k)])
    error_message = "buckets must at least define data, artifacts and models."
  }
  validation {
    condition     = alltrue([for b in values(var.buckets) : b.noncurrent_version_expiration_days >= 7])
    error_message = "Keep noncurrent versions at least 7 days (they are the undo of an overwrite)."
  }
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS of every bucket."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>), not an alias or a key id."
  }
}

variable "access_log_retention_days" {
  description = "Days to keep S3 server access logs."
  type        = number
  default     = 365
  validation {
    condition     = var.access_log_retention_days >= 90
    error_message = "Keep access logs at least 90 days."
  }
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete non-empty buckets (dev only)."
  type        = bool
  default     = false
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
