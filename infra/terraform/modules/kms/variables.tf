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
}
