# What runs on the cluster: namespaces with Pod Security Standards labels, the stage service
# accounts (IRSA), and the Helm releases: Airflow (official chart), Triton (the chart in
# infra/k8s/triton), kube-prometheus-stack; Kubeflow Pipelines from its kustomize manifests
# (KFP publishes no Helm chart; its manifests create the kubeflow namespace).
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

# Admin key of Triton's restricted model-control API; `flightdeck deploy` reads the same Secret.
resource "random_password" "triton_admin_key" {
  length  = 48
  special = false
}

resource "kubernetes_secret_v1" "triton_admin_key" {
  metadata {
    name      = "triton-admin-key"
    namespace = kubernetes_namespace_v1.this["flightdeck"].metadata[0].name
    labels    = local.part_of
  }
  data = { "admin-key" = random_password.triton_admin_key.result }
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
    adminKeySecret  = kubernetes_secret_v1.triton_admin_key.metadata[0].name
    # The deploy stage's pods (containers/images.yaml service_accounts.deploy) may read the
    # Service's EndpointSlices to find the replicas (the chart's rbac.yaml).
    deployServiceAccount = {
      name      = kubernetes_service_account_v1.stage["flightdeck-train"].metadata[0].name
      namespace = kubernetes_service_account_v1.stage["flightdeck-train"].metadata[0].namespace
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
    executor = "KubernetesExecutor"
    # Metadata DB: RDS PostgreSQL (modules/airflow_db), not the chart's bundled PostgreSQL.
    postgresql = { enabled = false }
    data       = { metadataSecretName = var.airflow_metadata_secret }
    labels     = local.part_of
    # Task logs to S3 through the airflow IRSA role (artifacts/airflow-logs/ only).
    config = {
      logging = {
        remote_logging         = "True"
        remote_base_log_folder = "s3://${var.bucket_names["artifacts"]}/airflow-logs"
        remote_log_conn_id     = "aws_default"
        delete_local_logs      = "True"
      }
    }
    serviceAccount = { annotations = { "eks.amazonaws.com/role-arn" = var.role_arns["airflow"] } }
    workers        = { serviceAccount = { annotations = { "eks.amazonaws.com/role-arn" = var.role_arns["airflow"] } } }
    scheduler      = { serviceAccount = { annotations = { "eks.amazonaws.com/role-arn" = var.role_arns["airflow"] } } }
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
  })]
}

# Kubeflow Pipelines, standalone, from the project's own kustomize manifests at a pinned ref.
data "kustomization_build" "kfp_cluster" {
  path = "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=${var.chart_versions.kubeflow_pipelines}"
}

resource "kustomization_resource" "kfp_cluster" {
  for_each = data.kustomization_build.kfp_cluster.ids
  manifest = data.kustomization_build.kfp_cluster.manifests[each.value]
}

data "kustomization_build" "kfp" {
  path = "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=${var.chart_versions.kubeflow_pipelines}"
}

resource "kustomization_resource" "kfp" {
  for_each   = data.kustomization_build.kfp.ids
  manifest   = data.kustomization_build.kfp.manifests[each.value]
  depends_on = [kustomization_resource.kfp_cluster]
}
