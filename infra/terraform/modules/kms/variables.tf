variable "name" {
  description = "Alias of the key, without the alias/ prefix (e.g. flightdeck-dev-data)."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z0-9/_-]{3,200}$", var.name)) && !startswith(var.name, "aws")
    error_message = "name must be 3-200 letters, digits, / _ or -, and may not start with aws."
  }
}

variable "description" {
  description = "What the key encrypts."
  type        = string
  validation {
    condition     = length(trimspace(var.description)) > 0 && length(var.description) <= 8192
    error_message = "description must say what the key encrypts (1-8192 characters, the KMS limit)."
  }
}

variable "allow_cloudwatch_logs" {
  description = "Let CloudWatch Logs in this account and region use the key (for encrypted log groups)."
  type        = bool
  default     = false
}

variable "deletion_window_in_days" {
  description = "Waiting period before a scheduled deletion of the key takes effect."
  type        = number
  default     = 30
  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be 7-30."
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
