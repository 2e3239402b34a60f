variable "name" {
  description = "Environment name prefix (e.g. flightdeck-dev)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "role_arns" {
  description = "IRSA role ARN by workload (modules/iam output role_arns): data, trainer, batch_predict, triton, pipelines, airflow, cluster_autoscaler."
  type        = map(string)
  validation {
    condition     = alltrue([for k in ["data", "trainer", "batch_predict", "triton", "pipelines", "airflow", "cluster_autoscaler"] : contains(keys(var.role_arns), k)])
    error_message = "role_arns must hold data, trainer, batch_predict, triton, pipelines, airflow and cluster_autoscaler."
  }
  validation {
    condition     = alltrue([for a in values(var.role_arns) : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,64}$", a))])
    error_message = "role_arns values must be IAM role ARNs."
  }
}

variable "cluster_name" {
  description = "EKS cluster the autoscaler discovers the node groups of (modules/eks output cluster_name)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,38}$", var.cluster_name))
    error_message = "cluster_name must be 3-39 lowercase letters, digits or dashes, starting with a letter (modules/eks name)."
  }
}

variable "kubernetes_version" {
  description = "The cluster's Kubernetes MAJOR.MINOR (modules/eks output kubernetes_version): picks the cluster autoscaler image of that minor."
  type        = string
  validation {
    condition     = contains(["1.30", "1.31", "1.32", "1.33", "1.34"], var.kubernetes_version)
    error_message = "kubernetes_version must be one the cluster autoscaler image map of main.tf knows (1.30-1.34): add the new minor's image there."
  }
}

variable "triton_replicas" {
  description = "Triton replicas: min (the Deployment's count at install and the HPA's minimum), max (the HPA's maximum), max_unavailable (what a node drain may evict at a time, the PodDisruptionBudget). One GPU node each."
  type = object({
    min             = number
    max             = number
    max_unavailable = number
  })
  validation {
    condition     = floor(var.triton_replicas.min) == var.triton_replicas.min && floor(var.triton_replicas.max) == var.triton_replicas.max && var.triton_replicas.min >= 1 && var.triton_replicas.min <= var.triton_replicas.max && var.triton_replicas.max <= 20
    error_message = "triton_replicas needs whole numbers 1 <= min <= max <= 20."
  }
  validation {
    # >= 1: a drain never blocks on the PDB, even with one replica; < min with two or more: a
    # drain never takes the last serving replica.
    condition     = floor(var.triton_replicas.max_unavailable) == var.triton_replicas.max_unavailable && var.triton_replicas.max_unavailable >= 1 && (var.triton_replicas.min == 1 ? var.triton_replicas.max_unavailable == 1 : var.triton_replicas.max_unavailable < var.triton_replicas.min)
    error_message = "triton_replicas.max_unavailable must be 1 with one replica (drains must not block), and below min with two or more (one keeps serving)."
  }
}

variable "bucket_names" {
  description = "Bucket name by purpose (modules/storage output bucket_names): data, artifacts, models."
  type        = map(string)
  validation {
    condition     = alltrue([for k in ["data", "artifacts", "models"] : contains(keys(var.bucket_names), k)])
    error_message = "bucket_names must hold data, artifacts and models."
  }
}

variable "aws_region" {
  description = "AWS region of the buckets and the cluster (FLIGHTDECK_AWS_REGION of the stage pods)."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as us-east-1."
  }
}

variable "redis_endpoint" {
  description = "host:port of the Feast online store's primary (modules/online_store output primary_endpoint), TLS."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9.-]+:[0-9]{1,5}$", var.redis_endpoint))
    error_message = "redis_endpoint must be host:port."
  }
}

variable "redis_auth_token" {
  description = "AUTH token of the Feast online store (modules/online_store output auth_token): the flightdeck-redis-auth Secret's `password`, FLIGHTDECK_REDIS_PASSWORD of the materialize pods and Triton."
  type        = string
  sensitive   = true
  validation {
    # ElastiCache AUTH tokens: 16-128 characters, letters, digits and only ! & # $ ^ < > - (so no
    # comma either, which Feast's Redis connection string could not carry; components/features/redis_auth.py).
    condition     = can(regex("^[A-Za-z0-9!&#$^<>-]{16,128}$", var.redis_auth_token))
    error_message = "redis_auth_token must be an ElastiCache AUTH token: 16-128 letters, digits or ! & # $ ^ < > -."
  }
}

variable "tuning_storage_url" {
  description = "SQLAlchemy URL of the Optuna study storage of `flightdeck tune` (postgresql://user:password@host:5432/db on the RDS instance): the flightdeck-tuning-db Secret's `url`, FLIGHTDECK_TUNING_STORAGE_URL of the tune pods. Empty: tuning refuses on the cluster."
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
  description = "Tag of the flightdeck stage images (FLIGHTDECK_IMAGE_TAG); empty: the package version. Digests in containers/image-digests.json win."
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$", var.image_tag))
    error_message = "image_tag must be empty or a Docker tag (letters, digits, _ . -, at most 128)."
  }
}

variable "model_name" {
  description = "Registry model the stages train, deploy and monitor (FLIGHTDECK_MODEL_NAME; components/core/settings.py default)."
  type        = string
  default     = "flight_delay"
  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.model_name))
    error_message = "model_name must be lowercase letters, digits and underscores, starting with a letter."
  }
}

variable "lead_time_hours" {
  description = "Hours before scheduled departure that predictions are made (FLIGHTDECK_LEAD_TIME_HOURS; components/core/settings.py default)."
  type        = number
  default     = 2
  validation {
    condition     = var.lead_time_hours >= 0 && var.lead_time_hours <= 48
    error_message = "lead_time_hours must be between 0 and 48."
  }
}

variable "scoring_interval_minutes" {
  description = "Batch prediction's scoring interval: prediction times are floored to it and batch_prediction runs once per interval (FLIGHTDECK_SCORING_INTERVAL_MINUTES; components/core/settings.py default)."
  type        = number
  default     = 60
  validation {
    condition     = contains([1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440], var.scoring_interval_minutes)
    error_message = "scoring_interval_minutes must divide an hour, or be a whole number of hours that divides a day."
  }
}

variable "image_registry" {
  description = "Registry host of the flightdeck images (the ECR registry, <account>.dkr.ecr.<region>.amazonaws.com)."
  type        = string
  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?$", var.image_registry))
    error_message = "image_registry must be an ECR registry host (<account>.dkr.ecr.<region>.amazonaws.com), without a repository or scheme."
  }
}

variable "triton_image_digest" {
  description = "sha256 digest of the flightdeck/triton image to run (containers/image-digests.json after `make images PUSH=1`)."
  type        = string
  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.triton_image_digest))
    error_message = "triton_image_digest must be sha256:<64 hex digits>."
  }
  validation {
    condition     = !can(regex("^sha256:0{64}$", var.triton_image_digest))
    error_message = "triton_image_digest is the all-zero placeholder: put the digest `make images PUSH=1` recorded in containers/image-digests.json (images.triton)."
  }
}

variable "airflow_metadata_secret" {
  description = "Kubernetes Secret (in the airflow namespace) with key `connection`: the RDS PostgreSQL URL, synced from the RDS-managed Secrets Manager secret."
  type        = string
  default     = "airflow-metadata"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.airflow_metadata_secret))
    error_message = "airflow_metadata_secret must be a Kubernetes Secret name (lowercase DNS subdomain)."
  }
}

variable "chart_versions" {
  description = "Pinned chart versions: airflow (apache-airflow/airflow), kube_prometheus_stack, pushgateway (prometheus-community/prometheus-pushgateway), cluster_autoscaler (kubernetes/autoscaler), metrics_server (kubernetes-sigs/metrics-server), prometheus_adapter (prometheus-community/prometheus-adapter), and the Kubeflow Pipelines manifests ref (a release tag)."
  type = object({
    airflow               = string
    kube_prometheus_stack = string
    pushgateway           = string
    cluster_autoscaler    = string
    metrics_server        = string
    prometheus_adapter    = string
    kubeflow_pipelines    = string
  })
  # kube_prometheus_stack 77.6.0 ships prometheus-operator v0.85.0, whose CRDs tests/infra keeps
  # (tests/infra/data/crds): move them with it.
  default = {
    airflow               = "1.18.0"
    kube_prometheus_stack = "77.6.0"
    pushgateway           = "3.11.2"
    cluster_autoscaler    = "9.50.0"
    metrics_server        = "3.12.2"
    prometheus_adapter    = "4.11.0"
    kubeflow_pipelines    = "2.14.3"
  }
  validation {
    condition     = alltrue([for v in values(var.chart_versions) : can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", v))])
    error_message = "Pin exact versions (X.Y.Z)."
  }
  validation {
    # The KFP manifests are fetched from git at this ref: a release tag of kubeflow/pipelines
    # (its tags are X.Y.Z, no leading v), never a branch such as master or release-2.x.
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.chart_versions.kubeflow_pipelines))
    error_message = "chart_versions.kubeflow_pipelines must be a kubeflow/pipelines release tag (X.Y.Z), not a branch."
  }
}

variable "runbook_base_url" {
  description = "Where RUNBOOK.md is published, without a trailing slash (e.g. the repository's blob URL at the deployed ref): every alert's runbook_url becomes <this>/RUNBOOK.md#<alert>."
  type        = string
  validation {
    condition     = can(regex("^https://[^ <>]+[^/]$", var.runbook_base_url))
    error_message = "runbook_base_url must be an https:// URL without a trailing slash."
  }
}

variable "kubeflow_pipelines_commit" {
  description = "Commit of kubeflow/pipelines whose manifests/kustomize is installed: the commit chart_versions.kubeflow_pipelines (a release tag) points to, pinned because a tag can be moved (`git ls-remote https://github.com/kubeflow/pipelines 'refs/tags/<tag>^{}'`)."
  type        = string
  # The commit tag 2.14.3 points to (read 2026-12-04 from a snapshot of kubeflow/pipelines: `git rev-parse
  # '2.14.3^{}'`). Change it together with chart_versions.kubeflow_pipelines and the copy tests/infra
  # builds offline (tests/infra/data/kfp-manifests/README.md).
  default = "fc3214d4b4d395cb2d5de940d3dbd7ebc295c330"
  validation {
    condition     = can(regex("^[0-9a-f]{40}$", var.kubeflow_pipelines_commit))
    error_message = "kubeflow_pipelines_commit must be a full 40-hex commit SHA of kubeflow/pipelines."
  }
  validation {
    condition     = !can(regex("^0{40}$", var.kubeflow_pipelines_commit))
    error_message = "kubeflow_pipelines_commit is the all-zero placeholder: set it to the commit of the chart_versions.kubeflow_pipelines tag (git ls-remote https://github.com/kubeflow/pipelines 'refs/tags/<tag>^{}')."
  }
}
