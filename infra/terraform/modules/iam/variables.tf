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
    airflow       = ["airflow:airflow-worker", "airflow:airflow-scheduler", "airflow:airflow-api-server"]
  }
  validation {
    condition     = alltrue(flatten([for sas in values(var.service_accounts) : [for sa in sas : can(regex("^[a-z0-9-]+:[a-z0-9-]+$", sa))]]))
    error_message = "Service accounts are written namespace:name."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
