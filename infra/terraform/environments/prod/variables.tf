# Only what changes from one deployment of this environment to the next (terraform.tfvars, or
# -var in CI); everything else about the environment is in main.tf. Checked in modules/.
variable "triton_image_digest" {
  description = "sha256 digest of the flightdeck/triton image to serve (containers/image-digests.json after `make images PUSH=1`)."
  type        = string
}

variable "eks_public_access_cidrs" {
  description = "CIDRs allowed to reach the EKS API from outside the VPC (operators' VPN); empty: private only."
  type        = list(string)
  default     = []
}

variable "image_tag" {
  description = "Tag of the flightdeck stage images this deployment runs (`make images PUSH=1`); empty: the package version."
  type        = string
  default     = ""
}
