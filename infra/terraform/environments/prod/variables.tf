# Only what changes from one deployment of this environment to the next (terraform.tfvars, or
# -var in CI); everything else about the environment is in main.tf. Validated here and in modules/.
variable "triton_image_digest" {
  description = "sha256 digest of the flightdeck/triton image to serve (containers/image-digests.json after `make images PUSH=1`)."
  type        = string
  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.triton_image_digest))
    error_message = "triton_image_digest must be sha256:<64 hex digits>."
  }
  validation {
    # terraform.tfvars ships an all-zero placeholder: refuse it, so no plan deploys an image that does not exist.
    condition     = !can(regex("^sha256:0{64}$", var.triton_image_digest))
    error_message = "triton_image_digest is the all-zero placeholder of terraform.tfvars: put the digest `make images PUSH=1` recorded in containers/image-digests.json (images.triton)."
  }
}

variable "eks_public_access_cidrs" {
  description = "CIDRs allowed to reach the EKS API from outside the VPC (operators' VPN); empty: private only."
  type        = list(string)
  default     = []
  validation {
    # The addresses of all the CIDRs together (2^(32 - prefix) each) must stay below the whole IPv4
    # space: 0.0.0.0/0, 0.0.0.0/1 + 128.0.0.0/1, or any other set that could cover the internet is
    # refused (overlapping CIDRs count twice: a list that large is refused too, never let through).
    condition = alltrue([for c in var.eks_public_access_cidrs : can(cidrnetmask(c))]) && sum(concat([0], [
      for c in var.eks_public_access_cidrs : can(cidrnetmask(c)) ? pow(2, 32 - tonumber(split("/", c)[1])) : 0
    ])) < pow(2, 32)
    error_message = "eks_public_access_cidrs must be valid IPv4 CIDRs (a.b.c.d/n) that together cover less than the whole internet: not 0.0.0.0/0, nor 0.0.0.0/1 + 128.0.0.0/1 or any set adding up to all 2^32 addresses. List the operators' networks."
  }
}

variable "image_tag" {
  description = "Tag of the flightdeck stage images this deployment runs (`make images PUSH=1`); empty: the package version."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$", var.image_tag))
    error_message = "image_tag must be empty or a Docker tag (letters, digits, _ . -, at most 128)."
  }
}

variable "runbook_base_url" {
  description = "Where RUNBOOK.md is published, without a trailing slash (e.g. https://github.com/<org>/flightdeck/blob/<ref>): the alerts' runbook links."
  type        = string
  validation {
    condition     = can(regex("^https://[^ <>]+[^/]$", var.runbook_base_url))
    error_message = "runbook_base_url must be an https:// URL without a trailing slash."
  }
}
