variable "name" {
  description = "Prefix of the role names (e.g. flightdeck-dev)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (modules/eks)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN."
  }
}

variable "oidc_issuer" {
  description = "OIDC issuer without https:// (modules/eks output oidc_issuer)."
  type        = string
  validation {
    condition     = !startswith(var.oidc_issuer, "https://")
    error_message = "oidc_issuer must not start with https://."
  }
}

variable "bucket_arns" {
  description = "Bucket ARN by purpose; must hold data, artifacts and models (modules/storage)."
  type        = map(string)
  validation {
    condition     = alltrue([for k in ["data", "artifacts", "models"] : contains(keys(var.bucket_arns), k)])
    error_message = "bucket_arns must hold data, artifacts and models."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the buckets (SSE-KMS): roles may use it for data keys, nothing else."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>), not an alias or a key id."
  }
}

variable "service_accounts" {
  description = "Kubernetes service accounts (namespace:name) allowed to assume each workload's role."
  type        = map(list(string))
  default = {
    data          = ["flightdeck:flightdeck-data"]
    trainer       = ["flightdeck:flightdeck-train"]
    batch_predict = ["flightdeck:flightdeck-predict"]
    triton        = ["flightdeck:triton"]
    pipelines     = ["kubeflow:flightdeck-pipelines"]
    # The Airflow chart's per-component accounts (<release>-<component>) that modules/platform annotates.
    airflow = [
      "airflow:airflow-worker", "airflow:airflow-scheduler", "airflow:airflow-api-server",
      "airflow:airflow-triggerer", "airflow:airflow-dag-processor",
    ]
    # The cluster-autoscaler chart's account (modules/platform, rbac.serviceAccount.name).
    cluster_autoscaler = ["kube-system:cluster-autoscaler"]
  }
  validation {
    condition     = alltrue([for k in keys(var.service_accounts) : contains(["data", "trainer", "batch_predict", "triton", "pipelines", "airflow", "cluster_autoscaler"], k)])
    error_message = "service_accounts keys are workloads this module has a role for: data, trainer, batch_predict, triton, pipelines, airflow, cluster_autoscaler."
  }
  validation {
    condition     = alltrue(flatten([for sas in values(var.service_accounts) : [for sa in sas : can(regex("^[a-z0-9-]+:[a-z0-9-]+$", sa))]]))
    error_message = "Service accounts are written namespace:name."
  }
}

variable "cluster_name" {
  description = "EKS cluster whose node groups the cluster autoscaler may resize (modules/eks output cluster_name)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,38}$", var.cluster_name))
    error_message = "cluster_name must be 3-39 lowercase letters, digits or dashes, starting with a letter (modules/eks name)."
  }
}

variable "node_group_arns" {
  description = "ARNs of the cluster's managed node groups (modules/eks output node_group_arns): all the autoscaler may describe."
  type        = list(string)
  validation {
    condition     = length(var.node_group_arns) >= 1 && alltrue([for a in var.node_group_arns : can(regex("^arn:aws[a-z-]*:eks:[a-z0-9-]+:[0-9]{12}:nodegroup/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/[0-9a-f-]+$", a))])
    error_message = "node_group_arns must be EKS node group ARNs (arn:aws:eks:<region>:<account>:nodegroup/<cluster>/<group>/<id>)."
  }
}

variable "autoscaling_group_names" {
  description = "Auto Scaling groups of the cluster's managed node groups (modules/eks output autoscaling_group_names): all the autoscaler may resize."
  type        = list(string)
  validation {
    # EKS names them eks-<node group>-<id>.
    condition     = length(var.autoscaling_group_names) >= 1 && alltrue([for n in var.autoscaling_group_names : can(regex("^eks-[A-Za-z0-9_-]+$", n))])
    error_message = "autoscaling_group_names must be the EKS node groups' Auto Scaling groups (eks-<node group>-<id>)."
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
