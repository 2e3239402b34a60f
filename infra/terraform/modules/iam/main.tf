# IAM roles for service accounts (IRSA), one per workload, each scoped to named buckets and key
# prefixes: exactly what the code of the workload's stages reads and writes (tests/infra checks the
# grants against the code's key builders). Keys are from the bucket root (FLIGHTDECK_S3_PREFIX is
# empty on the cluster); a `*` inside a prefix matches any model name.
#   data          ingest/validate/features/monitor: read+write the data and artifacts buckets,
#                 read models (monitor compares with the serving version's reference sample)
#   trainer       train: its training set, the validated partitions' pointers (lineage) -> runs/;
#                 evaluate: runs/, training sets, the champion; register: runs/ -> models/;
#                 deploy: models/ -> the Triton repository, serving/<model>/ (state, lock), the
#                 registry's deployment record; the rollout stages (deploy's role): the challenger
#                 records and health files (serving/), the labels of their flights (validated/flights/)
#   batch_predict the day's validated flights, the feature tables and Feast's registry, the
#                 serving state and (--in-process) the registry; writes data/predictions/ and, with
#                 a shadow/canary challenger, its outputs on the same flights (serving/*/challenger/)
#   triton        the model repository, the serving state and Feast's registry (the online model);
#                 writes the online challenger's outputs (serving/*/challenger/)
#   pipelines     KFP runs: the union of data, trainer and batch_predict (one SA per run)
#   airflow       its remote task logs (artifacts/airflow-logs/) and the run log the DAG callbacks
#                 write (artifacts/runlog/, components/core/runlog.py); reads the reports the
#                 flightdeck plugin serves behind the tasks' extra links (the evaluations, the
#                 registry's model cards, the monitoring reports, the quarantine reports, the rollout reports:
#                 components/orchestration/report_pages.py)
# and the cluster autoscaler's role (no S3): resize this cluster's node groups, nothing else.
locals {
  b = var.bucket_arns
  access = {
    data = {
      read  = [{ bucket = "data", prefix = "" }, { bucket = "artifacts", prefix = "" }, { bucket = "models", prefix = "" }]
      write = [{ bucket = "data", prefix = "" }, { bucket = "artifacts", prefix = "" }]
    }
    trainer = {
      read = [
        { bucket = "data", prefix = "training_sets/" },
        { bucket = "data", prefix = "validated/*/_PUBLISHED.json" }, # pointers only: lineage hashes
        { bucket = "data", prefix = "validated/flights/" },          # the rollout's labels (arr_delay)
        { bucket = "artifacts", prefix = "runs/" },
        { bucket = "models", prefix = "models/" },
        { bucket = "models", prefix = "serving/" },
        { bucket = "models", prefix = "triton/model_repository/" },
      ]
      write = [
        { bucket = "artifacts", prefix = "runs/" },
        { bucket = "models", prefix = "models/" },
        { bucket = "models", prefix = "serving/" },
        { bucket = "models", prefix = "triton/model_repository/" },
      ]
    }
    batch_predict = {
      read = [
        { bucket = "data", prefix = "validated/flights/" },
        { bucket = "data", prefix = "features/" },
        { bucket = "data", prefix = "predictions/" }, # the partition's pointer, replaced on a rerun
        { bucket = "artifacts", prefix = "feast/" },
        { bucket = "models", prefix = "serving/*/state.json" },
        { bucket = "models", prefix = "models/" },
      ]
      write = [
        { bucket = "data", prefix = "predictions/" },
        { bucket = "models", prefix = "serving/*/challenger/" },
      ]
    }
    triton = {
      read = [
        { bucket = "models", prefix = "triton/model_repository/" },
        { bucket = "models", prefix = "serving/*/state.json" },
        { bucket = "artifacts", prefix = "feast/" },
      ]
      write = [{ bucket = "models", prefix = "serving/*/challenger/" }]
    }
    # Kubeflow Pipelines v2 sets one service account per run, not per step (kfp-kubernetes
    # 2.16.1 has no per-task setting), so a pipeline run needs the union of the stage roles it
    # runs (data + trainer + batch_predict); tests/infra checks it is exactly that union.
    pipelines = {
      read = [{ bucket = "data", prefix = "" }, { bucket = "artifacts", prefix = "" }, { bucket = "models", prefix = "" }]
      write = [
        { bucket = "data", prefix = "" },
        { bucket = "artifacts", prefix = "" },
        { bucket = "models", prefix = "models/" },
        { bucket = "models", prefix = "serving/" },
        { bucket = "models", prefix = "triton/model_repository/" },
      ]
    }
    airflow = {
      read = [
        { bucket = "artifacts", prefix = "airflow-logs/" },
        { bucket = "artifacts", prefix = "runlog/" },
        { bucket = "artifacts", prefix = "runs/evaluate/" },
        { bucket = "artifacts", prefix = "monitoring/" },
        { bucket = "models", prefix = "models/" },
        { bucket = "data", prefix = "quarantine/" },
        { bucket = "models", prefix = "serving/*/rollouts/" }, # the rollout reports (rollout_page)
      ]
      write = [{ bucket = "artifacts", prefix = "airflow-logs/" }, { bucket = "artifacts", prefix = "runlog/" }]
    }
  }
  # Buckets on which a workload's client calls HeadBucket, which S3 authorizes as s3:ListBucket
  # with no s3:prefix in the request: Feast's S3 registry (feast/infra/registry/s3.py) before it
  # reads registry.db, Triton's S3 repository loader before it lists the repository. There the
  # prefix condition is StringLikeIfExists: HeadBucket (and a listing without any prefix, which
  # shows key names, never contents) passes; every listing with a prefix stays inside the grants.
  head_bucket = {
    batch_predict = ["artifacts"]
    triton        = ["artifacts", "models"]
  }
  workloads = { for k, v in local.access : k => v if contains(keys(var.service_accounts), k) }
  # Every role: the S3 workloads above and, when its service account is given, the autoscaler's.
  roles = toset(concat(keys(local.workloads), [for k in keys(var.service_accounts) : k if k == "cluster_autoscaler"]))
}

data "aws_iam_policy_document" "assume" {
  for_each = local.roles
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:sub"
      values   = [for sa in var.service_accounts[each.key] : "system:serviceaccount:${sa}"]
    }
  }
}

data "aws_iam_policy_document" "access" {
  for_each = local.workloads

  statement {
    sid       = "ReadObjects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for r in each.value.read : "${local.b[r.bucket]}/${r.prefix}*"]
  }

  dynamic "statement" {
    for_each = length(each.value.write) > 0 ? [1] : []
    content {
      sid = "WriteObjects"
      # DeleteObject: stages publish atomically (write a temporary key, copy, delete it).
      actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
      resources = [for r in each.value.write : "${local.b[r.bucket]}/${r.prefix}*"]
    }
  }

  dynamic "statement" {
    for_each = { for r in concat(each.value.read, each.value.write) : r.bucket => r.prefix... }
    content {
      sid       = "List${title(statement.key)}"
      actions   = ["s3:ListBucket"]
      resources = [local.b[statement.key]]
      # S3 also answers a GET of a missing key with 404 (not 403) only when this allows listing
      # with s3:prefix = that key, which the read prefixes below cover (what the stores rely on:
      # a missing pointer is "not published yet", components/core/store.py).
      dynamic "condition" {
        for_each = contains(statement.value, "") ? [] : [1]
        content {
          test     = contains(lookup(local.head_bucket, each.key, []), statement.key) ? "StringLikeIfExists" : "StringLike"
          variable = "s3:prefix"
          values   = [for p in distinct(statement.value) : "${p}*"]
        }
      }
    }
  }

  statement {
    sid       = "BucketKey"
    actions   = length(each.value.write) > 0 ? ["kms:Decrypt", "kms:GenerateDataKey"] : ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role" "workload" {
  for_each             = local.roles
  name                 = "${var.name}-${replace(each.key, "_", "-")}"
  description          = "IRSA role of the flightdeck ${each.key} workload"
  assume_role_policy   = data.aws_iam_policy_document.assume[each.key].json
  max_session_duration = 3600
  tags                 = merge(var.tags, { Workload = each.key })
}

resource "aws_iam_role_policy" "workload" {
  for_each = local.workloads
  name     = "s3-access"
  role     = aws_iam_role.workload[each.key].id
  policy   = data.aws_iam_policy_document.access[each.key].json
}

# The cluster autoscaler (modules/platform), with the "Full Cluster Autoscaler Features Policy" of
# its AWS docs (cluster-autoscaler/cloudprovider/aws/README.md) narrowed where AWS allows it:
# the Describe*/Get* calls have no resource-level permissions ("*" is the only resource they
# take); DescribeNodegroup is limited to this cluster's node groups; the two calls that change
# anything are limited to this cluster's Auto Scaling groups, and only while those carry the tags
# EKS puts on its managed node groups' ASGs for this cluster (the docs' tag-based conditions).
data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  autoscaling_group_arns = [
    for name in var.autoscaling_group_names :
    "arn:${data.aws_partition.current.partition}:autoscaling:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:autoScalingGroup:*:autoScalingGroupName/${name}"
  ]
}

data "aws_iam_policy_document" "cluster_autoscaler" {
  statement {
    sid = "DiscoverGroupsAndInstanceTypes"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "DescribeOwnNodeGroups"
    actions   = ["eks:DescribeNodegroup"]
    resources = var.node_group_arns
  }

  statement {
    sid       = "ResizeOwnNodeGroups"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = local.autoscaling_group_arns
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${var.cluster_name}"
      values   = ["owned"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled"
      values   = ["true"]
    }
  }
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  for_each = setintersection(local.roles, ["cluster_autoscaler"])
  name     = "resize-node-groups"
  role     = aws_iam_role.workload[each.key].id
  policy   = data.aws_iam_policy_document.cluster_autoscaler.json
}
