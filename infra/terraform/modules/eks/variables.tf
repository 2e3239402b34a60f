variable "name" {
  description = "Cluster name (also the prefix of its IAM roles)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,38}$", var.name))
    error_message = "name must be 3-39 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.33"
  validation {
    condition     = can(regex("^1\\.(3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must be 1.30 or newer, as MAJOR.MINOR."
  }
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
  validation {
    condition     = can(regex("^vpc-([0-9a-f]{8}|[0-9a-f]{17})$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc- and 8 or 17 hex digits)."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the control-plane ENIs and the nodes."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
  validation {
    condition     = alltrue([for s in var.subnet_ids : can(regex("^subnet-([0-9a-f]{8}|[0-9a-f]{17})$", s))])
    error_message = "subnet_ids must be subnet ids (subnet- and 8 or 17 hex digits)."
  }
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint; empty keeps the endpoint private only."
  type        = list(string)
  default     = []
  validation {
    # The addresses of all the CIDRs together (2^(32 - prefix) each) must stay below the whole IPv4
    # space: 0.0.0.0/0, 0.0.0.0/1 + 128.0.0.0/1, or any other set that could cover the internet is
    # refused (overlapping CIDRs count twice: a list that large is refused too, never let through).
    condition = alltrue([for c in var.public_access_cidrs : can(cidrnetmask(c))]) && sum(concat([0], [
      for c in var.public_access_cidrs : can(cidrnetmask(c)) ? pow(2, 32 - tonumber(split("/", c)[1])) : 0
    ])) < pow(2, 32)
    error_message = "public_access_cidrs must be valid IPv4 CIDRs (a.b.c.d/n) that together cover less than the whole internet: not 0.0.0.0/0, nor 0.0.0.0/1 + 128.0.0.0/1 or any set adding up to all 2^32 addresses. List the operators' networks."
  }
}

variable "kms_key_arn" {
  description = "KMS key for Kubernetes secrets envelope encryption and the control-plane log group."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>), not an alias or a key id."
  }
}

variable "system_node_group" {
  description = "The CPU node group for Airflow, KFP, stage pods and monitoring."
  type = object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
  })
  validation {
    condition     = var.system_node_group.min_size >= 1 && var.system_node_group.min_size <= var.system_node_group.desired_size && var.system_node_group.desired_size <= var.system_node_group.max_size
    error_message = "system_node_group needs 1 <= min_size <= desired_size <= max_size."
  }
}

variable "gpu_node_group" {
  description = "The GPU node group (Triton, training); tainted nvidia.com/gpu=true:NoSchedule so only pods that tolerate it land there. One GPU per node: its max_size is the GPU capacity."
  type = object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
  })
  validation {
    # Every size below has exactly one NVIDIA GPU: each pod takes one, and the ASG's node template
    # advertises nvidia.com/gpu=1 to the cluster autoscaler (main.tf gpu_node_template_tags).
    condition     = length(var.gpu_node_group.instance_types) >= 1 && alltrue([for t in var.gpu_node_group.instance_types : can(regex("^(g4dn|g5|g6|g6e)\\.(xlarge|2xlarge|4xlarge|8xlarge|16xlarge)$", t))])
    error_message = "gpu_node_group.instance_types must be single-GPU NVIDIA types: g4dn, g5, g6 or g6e in size xlarge, 2xlarge, 4xlarge, 8xlarge or 16xlarge."
  }
  validation {
    condition     = var.gpu_node_group.min_size >= 0 && var.gpu_node_group.min_size <= var.gpu_node_group.desired_size && var.gpu_node_group.desired_size <= var.gpu_node_group.max_size
    error_message = "gpu_node_group needs 0 <= min_size <= desired_size <= max_size."
  }
}

variable "nvidia_device_plugin_version" {
  description = "Version of the nvidia-device-plugin Helm chart (advertises nvidia.com/gpu on the GPU nodes)."
  type        = string
  default     = "0.17.1"
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.nvidia_device_plugin_version))
    error_message = "nvidia_device_plugin_version must be an exact chart version (X.Y.Z)."
  }
}

variable "log_retention_days" {
  description = "Days to keep control-plane logs."
  type        = number
  default     = 365
  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Keep control-plane logs at least a year."
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
