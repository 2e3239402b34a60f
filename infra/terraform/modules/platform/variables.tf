variable "name" {
  description = "Environment name prefix (e.g. flightdeck-dev)."
  type        = string
}

variable "role_arns" {
  description = "IRSA role ARN by workload (modules/iam output role_arns): data, trainer, batch_predict, triton, airflow."
  type        = map(string)
  validation {
    condition     = alltrue([for k in ["data", "trainer", "batch_predict", "triton", "airflow"] : contains(keys(var.role_arns), k)])
    error_message = "role_arns must hold data, trainer, batch_predict, triton and airflow."
  }
}

variable "bucket_names" {
  description = "Bucket name by purpose (modules/storage output bucket_names)."
  type        = map(string)
}

variable "image_registry" {
  description = "Registry host of the flightdeck images (the ECR registry, <account>.dkr.ecr.<region>.amazonaws.com)."
  type        = string
}

variable "triton_image_digest" {
  description = "sha256 digest of the flightdeck/triton image to run (containers/image-digests.json after `make images --push`)."
  type        = string
  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.triton_image_digest))
    error_message = "triton_image_digest must be sha256:<64 hex digits>."
  }
}

variable "airflow_metadata_secret" {
  description = "Kubernetes Secret (in the airflow namespace) with key `connection`: the RDS PostgreSQL URL, synced from the RDS-managed Secrets Manager secret."
  type        = string
  default     = "airflow-metadata"
}

variable "chart_versions" {
  description = "Pinned chart versions: airflow (apache-airflow/airflow), kube_prometheus_stack, and the Kubeflow Pipelines manifests ref."
  type = object({
    airflow               = string
    kube_prometheus_stack = string
    kubeflow_pipelines    = string
  })
  default = {
    airflow               = "1.18.0"
    kube_prometheus_stack = "77.6.0"
    kubeflow_pipelines    = "2.14.3"
  }
  validation {
    condition     = alltrue([for v in values(var.chart_versions) : can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", v))])
    error_message = "Pin exact versions (X.Y.Z)."
  }
}
