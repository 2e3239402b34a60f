# What runs on the cluster: namespaces with Pod Security Standards labels, the stage service
# accounts (IRSA), the stage pods' settings ConfigMap, Triton admin-key and Redis AUTH Secrets, and the Helm
# releases: the cluster autoscaler, metrics-server, Airflow (official chart), Triton (the chart in
# infra/k8s/triton), kube-prometheus-stack, prometheus-adapter (Triton's HPA metrics), the
# Pushgateway and flightdeck's on-call wiring (infra/k8s/monitoring); Kubeflow Pipelines from its
# kustomize manifests (KFP publishes no Helm chart; its manifests create the kubeflow namespace).
locals {
  part_of = { "app.kubernetes.io/part-of" = "flightdeck" }
  # Pod Security Standards per namespace: the platform's own pods meet "restricted"; the
  # third-party charts are held to "baseline" and warned about "restricted"; node-exporter
  # needs the host's network and /proc, so monitoring is privileged.
  namespaces = {
    flightdeck = "restricted"
    airflow    = "baseline"
    monitoring = "privileged"
  }
  stage_service_accounts = {
    flightdeck-data    = "data"
    flightdeck-train   = "trainer"
    flightdeck-predict = "batch_predict"
  }
  # Created by the KFP manifests (cluster-scoped-resources); KFP runs its steps there.
  kfp_namespace = "kubeflow"
  # KFP sets one service account per run (kfp-kubernetes 2.16 has no per-step setting):
  # `flightdeck kfp submit --service-account`, trusted by modules/iam's "pipelines" role.
  pipelines_service_account = "flightdeck-pipelines"
  # The Triton chart's Service (infra/k8s/triton/templates/service.yaml) and its ports.
  triton_service = "triton"
  triton_host    = "${local.triton_service}.${kubernetes_namespace_v1.this["flightdeck"].metadata[0].name}.svc.cluster.local"
  airflow_irsa   = { "eks.amazonaws.com/role-arn" = var.role_arns["airflow"] }
  # The cluster autoscaler's account (trusted by modules/iam's cluster_autoscaler role).
  cluster_autoscaler_service_account = "cluster-autoscaler"
  # Its image must match the cluster's Kubernetes minor (the autoscaler simulates that version's
  # scheduler); these are released patches of each minor (registry.k8s.io/autoscaling).
  cluster_autoscaler_images = {
    "1.30" = "v1.30.6"
    "1.31" = "v1.31.4"
    "1.32" = "v1.32.3"
    "1.33" = "v1.33.1"
    "1.34" = "v1.34.0"
  }
  # Tag of the flightdeck images (containers/build_images.py tags <version> and <git sha>): the
  # given one, else the package version, as components/core/images.py resolves it for stage pods.
  image_tag = var.image_tag != "" ? var.image_tag : regex("(?m)^version = \"([^\"]+)\"", file("${path.module}/../../../../pyproject.toml"))[0]
  # The Pushgateway chart names its Service after the release (the name contains the chart's).
  pushgateway_release = "prometheus-pushgateway"
  pushgateway_url     = "http://${local.pushgateway_release}.${kubernetes_namespace_v1.this["monitoring"].metadata[0].name}.svc.cluster.local:9091"

  # The non-secret settings of every stage pod, as FLIGHTDECK_* environment variables (keys =
  # components/core/cluster.py settings_env_names(), checked by tests/infra/test_terraform.py).
  # Airflow's pods take them with envFrom, KFP steps key by key (components/core/cluster.py).
  stage_settings = {
    FLIGHTDECK_PROFILE          = "aws"
    FLIGHTDECK_RUNTIME          = "kubernetes"
    FLIGHTDECK_S3_BUCKET        = var.bucket_names["artifacts"]
    FLIGHTDECK_S3_DATA_BUCKET   = var.bucket_names["data"]
    FLIGHTDECK_S3_MODELS_BUCKET = var.bucket_names["models"]
    FLIGHTDECK_S3_PREFIX        = "" # the buckets are flightdeck's own; IAM scopes keys from the root
    FLIGHTDECK_AWS_REGION       = var.aws_region
    # Feast's Redis connection string: ElastiCache has in-transit encryption (modules/online_store).
    FLIGHTDECK_REDIS_URL                = "${var.redis_endpoint},ssl=true"
    FLIGHTDECK_LEAD_TIME_HOURS          = tostring(var.lead_time_hours)
    FLIGHTDECK_SCORING_INTERVAL_MINUTES = tostring(var.scoring_interval_minutes)
    FLIGHTDECK_MODEL_NAME               = var.model_name
    FLIGHTDECK_TRITON_URL               = "${local.triton_host}:8001"
    FLIGHTDECK_TRITON_HTTP_URL          = "${local.triton_host}:8000"
    FLIGHTDECK_TRITON_SERVICE           = local.triton_service
    FLIGHTDECK_TRITON_NAMESPACE         = kubernetes_namespace_v1.this["flightdeck"].metadata[0].name
    FLIGHTDECK_PUSHGATEWAY_URL          = local.pushgateway_url
    FLIGHTDECK_IMAGE_REGISTRY           = var.image_registry
    FLIGHTDECK_IMAGE_TAG                = var.image_tag
    # The only place ingest reads a source from (besides the packaged data): the data bucket's landing/.
    FLIGHTDECK_LANDING           = "s3://${var.bucket_names["data"]}/landing/"
    FLIGHTDECK_QUARANTINE_MAX_MB = "64"
  }
  # Where stage pods run: flightdeck (Airflow's KubernetesPodOperator pods), kubeflow (KFP steps).
  stage_namespaces = {
    flightdeck = kubernetes_namespace_v1.this["flightdeck"].metadata[0].name
    kubeflow   = local.kfp_namespace
  }
  # ... and Airflow, whose DAG processor builds the pods from the same settings (runtime, images).
  settings_namespaces = merge(local.stage_namespaces, {
    airflow = kubernetes_namespace_v1.this["airflow"].metadata[0].name
  })
}

resource "kubernetes_namespace_v1" "this" {
  for_each = local.namespaces
  metadata {
    name = each.key
    labels = merge(local.part_of, {
      "pod-security.kubernetes.io/enforce" = each.value
      "pod-security.kubernetes.io/warn"    = "restricted"
      "pod-security.kubernetes.io/audit"   = "restricted"
    })
  }
}

# Service accounts of the stage pods (KubernetesPodOperator / KFP): AWS access via IRSA only.
resource "kubernetes_service_account_v1" "stage" {
  for_each = local.stage_service_accounts
  metadata {
    name        = each.key
    namespace   = kubernetes_namespace_v1.this["flightdeck"].metadata[0].name
    labels      = local.part_of
    annotations = { "eks.amazonaws.com/role-arn" = var.role_arns[each.value] }
  }
  automount_service_account_token = false
}

# KFP runs' service account (IRSA: the union of the stage roles, modules/iam "pipelines").
resource "kubernetes_service_account_v1" "pipelines" {
  metadata {
    name        = local.pipelines_service_account
    namespace   = local.kfp_namespace
    labels      = local.part_of
    annotations = { "eks.amazonaws.com/role-arn" = var.role_arns["pipelines"] }
  }
  # Every KFP step pod calls the Kubernetes API (KFP's launcher reads its ConfigMap, Argo's
  # executor records the outputs), and deploy reads Triton's EndpointSlices.
  automount_service_account_token = true
  depends_on                      = [kustomization_resource.kfp_cluster]
}

# What KFP's own runner account may do in its namespace (the `pipeline-runner` Role of the KFP
# manifests), for the account flightdeck's runs use instead.
resource "kubernetes_role_binding_v1" "pipelines_runner" {
  metadata {
    name      = "${local.pipelines_service_account}-runner"
    namespace = local.kfp_namespace
    labels    = local.part_of
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Role"
    name      = "pipeline-runner"
  }
  subject {
    kind      = "ServiceAccount"
    name      = kubernetes_service_account_v1.pipelines.metadata[0].name
    namespace = kubernetes_service_account_v1.pipelines.metadata[0].namespace
  }
  depends_on = [kustomization_resource.kfp]
}

# Airflow's workers run the KubernetesPodOperator: they start, watch, read the logs of, exec into
# (the xcom sidecar) and delete the stage pods in the flightdeck namespace, nothing else.
resource "kubernetes_role_v1" "airflow_stage_pods" {
  metadata {
    name      = "airflow-stage-pods"
    namespace = kubernetes_namespace_v1.this["flightdeck"].metadata[0].name
    labels    = local.part_of
  }
  rule {
    api_groups = [""]
    resources  = ["pods"]
    verbs      = ["create", "get", "list", "watch", "patch", "delete"]
  }
  rule {
    api_groups = [""]
    resources  = ["pods/log"]
    verbs      = ["get"]
  }
  rule {
    api_groups = [""]
    resources  = ["pods/exec"]
    verbs      = ["create", "get"]
  }
  rule {
    api_groups = [""]
    resources  = ["events"]
    verbs      = ["list"]
  }
}

resource "kubernetes_role_binding_v1" "airflow_stage_pods" {
  metadata {
    name      = "airflow-stage-pods"
    namespace = kubernetes_namespace_v1.this["flightdeck"].metadata[0].name
    labels    = local.part_of
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Role"
    name      = kubernetes_role_v1.airflow_stage_pods.metadata[0].name
  }
  subject {
    kind      = "ServiceAccount"
    name      = "airflow-worker" # the chart's worker account (<release>-worker), trusted by modules/iam
    namespace = kubernetes_namespace_v1.this["airflow"].metadata[0].name
  }
}

# The stage pods' settings (components/core/cluster.py SETTINGS_CONFIG_MAP), in every namespace that
# reads them.
resource "kubernetes_config_map_v1" "settings" {
  for_each = local.settings_namespaces
  metadata {
    name      = "flightdeck-settings"
    namespace = each.value
    labels    = local.part_of
  }
  data       = local.stage_settings
  depends_on = [kustomization_resource.kfp_cluster] # the kubeflow namespace
}

# Admin key of Triton's restricted model-control API; `flightdeck deploy` reads the same Secret
# (components/core/cluster.py TRITON_ADMIN_SECRET), by reference, in both namespaces where deploy runs.
resource "random_password" "triton_admin_key" {
  length  = 48
  special = false
}

resource "kubernetes_secret_v1" "triton_admin_key" {
  for_each = local.stage_namespaces
  metadata {
    name      = "triton-admin-key"
    namespace = each.value
    labels    = local.part_of
  }
  data       = { "admin-key" = random_password.triton_admin_key.result }
  depends_on = [kustomization_resource.kfp_cluster] # the kubeflow namespace
}

moved {
  from = kubernetes_secret_v1.triton_admin_key
  to   = kubernetes_secret_v1.triton_admin_key["flightdeck"]
}

# The Feast online store's AUTH token (modules/online_store), as FLIGHTDECK_REDIS_PASSWORD of the
# pods that open the store, by reference (components/core/cluster.py REDIS_AUTH_SECRET): the materialize
# stage in both namespaces where stage pods run, and Triton (its online model) in flightdeck.
# Never in the settings ConfigMap. Rotating the token re-applies this Secret (RUNBOOK.md).
resource "kubernetes_secret_v1" "redis_auth" {
  for_each = local.stage_namespaces
  metadata {
    name      = "flightdeck-redis-auth"
    namespace = each.value
    labels    = local.part_of
  }
  data       = { password = var.redis_auth_token }
  depends_on = [kustomization_resource.kfp_cluster] # the kubeflow namespace
}

# Where `flightdeck tune` keeps its Optuna studies: an SQLAlchemy URL with its password (a database on the RDS
# PostgreSQL), as FLIGHTDECK_TUNING_STORAGE_URL of the tune pods, by reference (components/core/cluster.py
# TUNING_DB_SECRET), in both namespaces where stage pods run. Empty until an operator sets tuning_storage_url:
# the pods start (the KFP pipeline's tune step is a no-op unless tune_trials > 0) and a tune run on the aws
# profile refuses, naming the setting. Never in the settings ConfigMap.
resource "kubernetes_secret_v1" "tuning_db" {
  for_each = local.stage_namespaces
  metadata {
    name      = "flightdeck-tuning-db"
    namespace = each.value
    labels    = local.part_of
  }
  data       = { url = var.tuning_storage_url }
  depends_on = [kustomization_resource.kfp_cluster] # the kubeflow namespace
}

resource "helm_release" "triton" {
  name      = "triton"
  chart     = "${path.module}/../../../k8s/triton"
  namespace = kubernetes_namespace_v1.this["flightdeck"].metadata[0].name
  atomic    = true
  timeout   = 1200 # GPU nodes and model loading from S3 take minutes
  values = [yamlencode({
    image           = { repository = "${var.image_registry}/flightdeck/triton", digest = var.triton_image_digest }
    serviceAccount  = { roleArn = var.role_arns["triton"] }
    modelRepository = "s3://${var.bucket_names["models"]}/triton/model_repository"
    adminKeySecret  = kubernetes_secret_v1.triton_admin_key["flightdeck"].metadata[0].name
    # The online model's Feast lookups authenticate to Redis with it (FLIGHTDECK_REDIS_PASSWORD).
    redisAuthSecret = kubernetes_secret_v1.redis_auth["flightdeck"].metadata[0].name
    # The online model reads the stage settings (artifact store, Redis) like the stage pods.
    settingsConfigMap = kubernetes_config_map_v1.settings["flightdeck"].metadata[0].name
    # Per environment (the roots' triton_replicas): one GPU node per replica.
    replicas    = var.triton_replicas.min
    autoscaling = { minReplicas = var.triton_replicas.min, maxReplicas = var.triton_replicas.max }
    disruption  = { maxUnavailable = var.triton_replicas.max_unavailable }
    # The deploy stage's pods (containers/images.yaml service_accounts.deploy) and KFP runs may
    # read the Service's EndpointSlices to find the replicas (the chart's rbac.yaml).
    deployServiceAccount = {
      name      = kubernetes_service_account_v1.stage["flightdeck-train"].metadata[0].name
      namespace = kubernetes_service_account_v1.stage["flightdeck-train"].metadata[0].namespace
    }
    pipelinesServiceAccount = {
      name      = kubernetes_service_account_v1.pipelines.metadata[0].name
      namespace = kubernetes_service_account_v1.pipelines.metadata[0].namespace
    }
  })]
}

# Resizes the node groups between their min and max: adds nodes for pending pods (a GPU node for
# a Triton replica the HPA added or a training pod, from zero too: modules/eks tags the GPU ASG
# with its node template) and removes unneeded ones. Runs on the system nodes, never on the GPU
# nodes it scales. Finds this cluster's ASGs by the tags EKS puts on managed node groups.
resource "helm_release" "cluster_autoscaler" {
  name       = "cluster-autoscaler"
  repository = "https://kubernetes.github.io/autoscaler"
  chart      = "cluster-autoscaler"
  version    = var.chart_versions.cluster_autoscaler
  namespace  = "kube-system"
  atomic     = true
  timeout    = 600
  values = [yamlencode({
    cloudProvider = "aws"
    awsRegion     = var.aws_region
    autoDiscovery = { clusterName = var.cluster_name }
    image         = { tag = local.cluster_autoscaler_images[var.kubernetes_version] }
    rbac = {
      serviceAccount = {
        name        = local.cluster_autoscaler_service_account
        annotations = { "eks.amazonaws.com/role-arn" = var.role_arns["cluster_autoscaler"] }
      }
    }
    nodeSelector = { "flightdeck.io/node-pool" = "system" }
    extraArgs = {
      # Of the groups that fit a pending pod, the one that leaves the least idle CPU and memory.
      expander = "least-waste"
      # A GPU node takes minutes to come back: remove one only after 15 minutes without work.
      "scale-down-unneeded-time" = "15m"
    }
  })]
}

resource "helm_release" "airflow" {
  name       = "airflow"
  repository = "https://airflow.apache.org"
  chart      = "airflow"
  version    = var.chart_versions.airflow
  namespace  = kubernetes_namespace_v1.this["airflow"].metadata[0].name
  timeout    = 900
  values = [yamlencode({
    # containers/airflow.Dockerfile: the official image with a venv from containers/locks/airflow.lock,
    # the flightdeck package and dags/ baked in (no git-sync, no DAG volume): every Airflow pod
    # parses the DAG files of the release it runs.
    airflowVersion = "3.3.2"
    images = {
      airflow = { repository = "${var.image_registry}/flightdeck/airflow", tag = local.image_tag }
    }
    dags = {
      persistence = { enabled = false }
      gitSync     = { enabled = false }
    }
    executor = "KubernetesExecutor"
    # Metadata DB: RDS PostgreSQL (modules/airflow_db), not the chart's bundled PostgreSQL.
    postgresql = { enabled = false }
    data       = { metadataSecretName = var.airflow_metadata_secret }
    labels     = local.part_of
    # The DAG processor builds the stage pods from the same settings as the pods get
    # (FLIGHTDECK_RUNTIME=kubernetes, the image registry and tag).
    extraEnvFrom = yamlencode([{ configMapRef = { name = kubernetes_config_map_v1.settings["airflow"].metadata[0].name } }])
    # Imports the cncf-kubernetes provider once per Airflow process, before the DAG processor
    # forks its per-file parsers (docs/AIRFLOW.md, "Parse time").
    airflowLocalSettings = file("${path.module}/../../../k8s/airflow/airflow_local_settings.py")
    # Task logs to S3 through the airflow IRSA role (artifacts/airflow-logs/ only).
    config = {
      logging = {
        remote_logging         = "True"
        remote_base_log_folder = "s3://${var.bucket_names["artifacts"]}/airflow-logs"
        remote_log_conn_id     = "aws_default"
        delete_local_logs      = "True"
      }
    }
    # IRSA (the airflow role: airflow-logs/ and runlog/) on each component's own service account;
    # the chart (1.18, values.schema.json) has no chart-wide serviceAccount key. Workers write the
    # task logs; the API server (Airflow 3's UI backend) reads them; the triggerer writes the
    # logs of deferred tasks; the DAG processor writes its parsing logs and runs the DAG-level
    # callbacks that write the run log (components/orchestration/runtime.py run_callbacks); the
    # scheduler writes task-context messages into a task's log (a pod that never started).
    workers      = { serviceAccount = { annotations = local.airflow_irsa } }
    scheduler    = { serviceAccount = { annotations = local.airflow_irsa } }
    apiServer    = { serviceAccount = { annotations = local.airflow_irsa } }
    triggerer    = { serviceAccount = { annotations = local.airflow_irsa } }
    dagProcessor = { serviceAccount = { annotations = local.airflow_irsa } }
  })]
}

resource "helm_release" "kube_prometheus_stack" {
  name       = "kube-prometheus-stack"
  repository = "https://prometheus-community.github.io/helm-charts"
  chart      = "kube-prometheus-stack"
  version    = var.chart_versions.kube_prometheus_stack
  namespace  = kubernetes_namespace_v1.this["monitoring"].metadata[0].name
  timeout    = 900
  values = [yamlencode({
    prometheus = {
      prometheusSpec = {
        # Labelled part-of=flightdeck so Triton's NetworkPolicy lets it scrape port 8002.
        podMetadata = { labels = local.part_of }
        # Pick up the rules and monitors of every release, not only this chart's.
        ruleSelectorNilUsesHelmValues           = false
        serviceMonitorSelectorNilUsesHelmValues = false
      }
    }
    # Alertmanager's whole configuration is the AlertmanagerConfig of infra/k8s/monitoring
    # (page -> PagerDuty, warning -> Slack), not the chart's default null receiver.
    alertmanager = {
      alertmanagerSpec = { alertmanagerConfiguration = { name = "flightdeck" } }
    }
    # The sidecar loads every ConfigMap labelled grafana_dashboard=1 (the flightdeck dashboard).
    grafana = {
      sidecar = { dashboards = { enabled = true, label = "grafana_dashboard", labelValue = "1" } }
    }
  })]
}

# On-call keys: the PagerDuty Events v2 routing key and the Slack incoming-webhook URL, which a
# person creates once in Secrets Manager as <name>/oncall (JSON {"pagerduty_routing_key": ...,
# "slack_webhook_url": ...}; README "Containers and infrastructure"). Alertmanager reads them from
# this Secret by reference (infra/k8s/monitoring alertmanagerconfig.yaml).
data "aws_secretsmanager_secret_version" "oncall" {
  secret_id = "${var.name}/oncall"
}

resource "kubernetes_secret_v1" "alertmanager_oncall" {
  metadata {
    name      = "alertmanager-oncall"
    namespace = kubernetes_namespace_v1.this["monitoring"].metadata[0].name
    labels    = local.part_of
  }
  data = {
    "pagerduty-routing-key" = jsondecode(data.aws_secretsmanager_secret_version.oncall.secret_string)["pagerduty_routing_key"]
    "slack-webhook-url"     = jsondecode(data.aws_secretsmanager_secret_version.oncall.secret_string)["slack_webhook_url"]
  }
}

# flightdeck's on-call wiring (infra/k8s/monitoring): the alert rules and the dashboard from the
# files promtool and the tests check (file(): one source of truth, no copy), the ServiceMonitors
# for Triton (job "triton") and the Pushgateway (pushed jobs kept), and Alertmanager's routes.
resource "helm_release" "monitoring" {
  name      = "flightdeck-monitoring"
  chart     = "${path.module}/../../../k8s/monitoring"
  namespace = kubernetes_namespace_v1.this["monitoring"].metadata[0].name
  atomic    = true
  timeout   = 300
  values = [yamlencode({
    alertRules     = file("${path.module}/../../../monitoring/alerts.yml")
    dashboard      = file("${path.module}/../../../monitoring/grafana/flightdeck.json")
    runbookBaseUrl = var.runbook_base_url
    triton         = { namespace = helm_release.triton.namespace, service = local.triton_service }
    pushgateway    = { release = local.pushgateway_release }
    oncallSecret = {
      name                = kubernetes_secret_v1.alertmanager_oncall.metadata[0].name
      pagerdutyRoutingKey = "pagerduty-routing-key"
      slackWebhookUrl     = "slack-webhook-url"
    }
    slackChannel = "#flightdeck-alerts"
  })]
  depends_on = [helm_release.kube_prometheus_stack] # the monitoring.coreos.com CRDs
}

# Resource metrics (kubectl top, CPU/memory HPAs) for the cluster; runs on the system nodes.
resource "helm_release" "metrics_server" {
  name       = "metrics-server"
  repository = "https://kubernetes-sigs.github.io/metrics-server/"
  chart      = "metrics-server"
  version    = var.chart_versions.metrics_server
  namespace  = "kube-system"
  atomic     = true
  timeout    = 300
  values = [yamlencode({
    nodeSelector = { "flightdeck.io/node-pool" = "system" }
  })]
}

# Serves Triton's queue metrics to its HPA (custom.metrics.k8s.io, per pod) from
# kube-prometheus-stack's Prometheus, with the rules of infra/k8s/prometheus-adapter/rules.yaml only.
resource "helm_release" "prometheus_adapter" {
  name       = "prometheus-adapter"
  repository = "https://prometheus-community.github.io/helm-charts"
  chart      = "prometheus-adapter"
  version    = var.chart_versions.prometheus_adapter
  namespace  = kubernetes_namespace_v1.this["monitoring"].metadata[0].name
  atomic     = true
  timeout    = 300
  values = [yamlencode({
    prometheus = {
      url  = "http://kube-prometheus-stack-prometheus.${kubernetes_namespace_v1.this["monitoring"].metadata[0].name}.svc"
      port = 9090
    }
    rules = {
      default = false
      custom  = yamldecode(file("${path.module}/../../../k8s/prometheus-adapter/rules.yaml"))
    }
    nodeSelector = { "flightdeck.io/node-pool" = "system" }
  })]
  depends_on = [helm_release.kube_prometheus_stack]
}

# The monitor stage pushes its metrics here (FLIGHTDECK_PUSHGATEWAY_URL); Prometheus scrapes it
# through infra/k8s/monitoring's ServiceMonitor (honorLabels: the pushed jobs are kept).
resource "helm_release" "pushgateway" {
  name       = local.pushgateway_release
  repository = "https://prometheus-community.github.io/helm-charts"
  chart      = "prometheus-pushgateway"
  version    = var.chart_versions.pushgateway
  namespace  = kubernetes_namespace_v1.this["monitoring"].metadata[0].name
  timeout    = 600
  values = [yamlencode({
    podLabels      = local.part_of
    serviceMonitor = { enabled = false } # infra/k8s/monitoring has it, where tests render it
  })]
  depends_on = [helm_release.kube_prometheus_stack] # the ServiceMonitor CRD
}

# Kubeflow Pipelines, standalone: the one component not installed through Helm. KFP publishes no
# Helm chart; its documented standalone install is `kubectl apply -k` of its kustomize manifests
# at a release tag (cluster-scoped-resources, then an env). Here the same manifests, built by the
# kustomization provider, at kubeflow_pipelines_commit: the commit of the release tag
# chart_versions.kubeflow_pipelines (X.Y.Z, validated in variables.tf), never a branch and not the
# tag itself (a tag can be moved), so a plan always builds the same objects.
data "kustomization_build" "kfp_cluster" {
  path = "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=${var.kubeflow_pipelines_commit}"
}

resource "kustomization_resource" "kfp_cluster" {
  for_each = data.kustomization_build.kfp_cluster.ids
  manifest = data.kustomization_build.kfp_cluster.manifests[each.value]
}

data "kustomization_build" "kfp" {
  path = "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=${var.kubeflow_pipelines_commit}"
}

resource "kustomization_resource" "kfp" {
  for_each   = data.kustomization_build.kfp.ids
  manifest   = data.kustomization_build.kfp.manifests[each.value]
  depends_on = [kustomization_resource.kfp_cluster]
}
