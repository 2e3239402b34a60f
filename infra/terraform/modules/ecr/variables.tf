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
}
