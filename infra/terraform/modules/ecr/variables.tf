variable "repositories" {
  description = "ECR repository names, one per image of containers/images.yaml (e.g. flightdeck/stage)."
  type        = set(string)
  validation {
    condition     = alltrue([for r in var.repositories : can(regex("^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$", r))])
    error_message = "Each repository must be a valid ECR name (lowercase, / separated)."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the images."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>), not an alias or a key id."
  }
}

variable "keep_images" {
  description = "How many tagged images each repository keeps; older ones expire."
  type        = number
  default     = 50
  validation {
    condition     = var.keep_images >= 5
    error_message = "Keep at least 5 images, for rollbacks."
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
