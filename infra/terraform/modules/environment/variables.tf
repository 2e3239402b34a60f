variable "environment" {
  description = "Environment name (dev, prod, ...): the prefix flightdeck-<environment> of every resource name."
  type        = string
  validation {
    # flightdeck-<environment> must fit the shortest name limit below (31 characters).
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.environment))
    error_message = "environment must be 2-12 lowercase letters or digits, starting with a letter."
  }
}

variable "tags" {
  description = "Tags on every resource; the root passes the same map to the aws provider's default_tags."
  type        = map(string)
  validation {
    condition     = alltrue([for k in ["Project", "Environment", "Owner", "ManagedBy"] : contains(keys(var.tags), k)])
    error_message = "tags must hold Project, Environment, Owner and ManagedBy."
  }
  validation {
    condition     = lookup(var.tags, "Environment", "") == var.environment
    error_message = "tags.Environment must equal environment."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the environment's VPC (/20 or larger; modules/network)."
  type        = string
  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20 && can(regex("^(10\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.|192\\.168\\.)", var.vpc_cidr))
    error_message = "vpc_cidr must be a private (RFC 1918) IPv4 CIDR of /20 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones to spread subnets and nodes over (two to four)."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4 && length(distinct(var.availability_zones)) == length(var.availability_zones) && alltrue([for z in var.availability_zones : can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9][a-z]$", z))]) && length(distinct([for z in var.availability_zones : substr(z, 0, length(z) - 1)])) == 1
    error_message = "availability_zones must be two to four distinct zone names of one region (e.g. us-east-1a, us-east-1b)."
  }
}

variable "single_nat_gateway" {
  description = "One shared NAT gateway (dev) instead of one per zone."
  type        = bool
  default     = false
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

variable "system_node_group" {
  description = "CPU node group sizing (Airflow, KFP, stage pods, monitoring)."
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
  validation {
    condition     = length(var.system_node_group.instance_types) >= 1 && alltrue([for t in var.system_node_group.instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t)) && !can(regex("^(g[0-9]|p[0-9]|inf|trn|dl)", t))])
    error_message = "system_node_group.instance_types must be CPU EC2 instance types (GPU and accelerator types belong in gpu_node_group)."
  }
}

variable "gpu_node_group" {
  description = "GPU node group sizing (Triton, training); its nodes are tainted nvidia.com/gpu, one GPU each (modules/eks)."
  type = object({
    instance_types = list(string)
    min_size       = number
    max_size       = number
    desired_size   = number
  })
  validation {
    condition     = var.gpu_node_group.min_size >= 0 && var.gpu_node_group.min_size <= var.gpu_node_group.desired_size && var.gpu_node_group.desired_size <= var.gpu_node_group.max_size
    error_message = "gpu_node_group needs 0 <= min_size <= desired_size <= max_size."
  }
}

variable "triton_replicas" {
  description = "Triton replicas (modules/platform): min (install count, HPA minimum), max (HPA maximum), max_unavailable (the PodDisruptionBudget). Each takes one GPU node."
  type = object({
    min             = number
    max             = number
    max_unavailable = number
  })
  validation {
    condition     = var.triton_replicas.min >= 1 && var.triton_replicas.min <= var.triton_replicas.max
    error_message = "triton_replicas needs 1 <= min <= max."
  }
  validation {
    # One GPU per node (modules/eks): at its max size the GPU group holds every Triton replica the
    # HPA may ask for, the one extra replica of a rolling update (maxSurge 1, maxUnavailable 0 in
    # infra/k8s/triton) and one training pod, so neither Triton nor training waits on the other.
    condition     = var.gpu_node_group.max_size >= var.triton_replicas.max + 2
    error_message = "gpu_node_group.max_size must be at least triton_replicas.max + 2 (a rolling-update surge and one training pod)."
  }
}

variable "redis_node_type" {
  description = "ElastiCache node type of the Feast online store."
  type        = string
  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.redis_node_type))
    error_message = "redis_node_type must be an ElastiCache node type (cache.<family>.<size>)."
  }
}

variable "redis_replicas" {
  description = "Read replicas of the online store besides the primary (at least one, for failover)."
  type        = number
  validation {
    condition     = var.redis_replicas >= 1 && var.redis_replicas <= 5 && floor(var.redis_replicas) == var.redis_replicas
    error_message = "redis_replicas must be a whole number 1-5 (automatic failover needs one)."
  }
}

variable "db_instance_class" {
  description = "RDS instance class of Airflow's metadata database."
  type        = string
  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.db_instance_class))
    error_message = "db_instance_class must be an RDS instance class (db.<family>.<size>)."
  }
}

variable "db_multi_az" {
  description = "Multi-AZ standby for the Airflow database."
  type        = bool
  default     = true
}

variable "db_deletion_protection" {
  description = "Deletion protection of the Airflow database (turn off only to tear down dev)."
  type        = bool
  default     = true
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy delete non-empty buckets (dev only)."
  type        = bool
  default     = false
}

variable "triton_image_digest" {
  description = "sha256 digest of the flightdeck/triton image to serve (containers/image-digests.json)."
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

variable "tuning_storage_url" {
  description = "SQLAlchemy URL of `flightdeck tune`'s Optuna storage on the RDS PostgreSQL (modules/platform tuning_storage_url). Empty: tuning refuses on the cluster."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    # Empty, or postgresql[+psycopg]://user:password@host[:port]/database (SQLAlchemy 2.1's PostgreSQL driver: psycopg 3).
    condition     = var.tuning_storage_url == "" || can(regex("^postgresql(\\+psycopg)?://[^@/\\s]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9_-]+$", var.tuning_storage_url))
    error_message = "tuning_storage_url must be empty or postgresql://user:password@host:5432/database (the RDS PostgreSQL)."
  }
}

variable "image_tag" {
  description = "Tag of the flightdeck stage images the pods run (FLIGHTDECK_IMAGE_TAG); empty: the package version."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$", var.image_tag))
    error_message = "image_tag must be empty or a Docker tag (letters, digits, _ . -, at most 128)."
  }
}

variable "runbook_base_url" {
  description = "Where RUNBOOK.md is published, without a trailing slash (modules/platform: the alerts' absolute runbook_url)."
  type        = string
  validation {
    condition     = can(regex("^https://[^ <>]+[^/]$", var.runbook_base_url))
    error_message = "runbook_base_url must be an https:// URL without a trailing slash."
  }
}
