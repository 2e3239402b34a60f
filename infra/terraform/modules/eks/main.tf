# EKS: private API endpoint, secrets encrypted with KMS, all control-plane logs, an OIDC provider
# for IRSA, a CPU "system" node group and a tainted GPU node group with the NVIDIA device plugin.
# The cluster autoscaler (modules/platform, IAM in modules/iam) moves each group's desired size
# between its min and max; the GPU group's ASG carries the node-template tags it needs to scale
# that group up from zero nodes.
data "aws_partition" "current" {}

locals {
  # What a GPU node is before one exists, for the cluster autoscaler (cloudprovider/aws/README.md,
  # "Auto-Discovery Setup"): with the group at zero it has no node to look at, so the ASG's tags
  # say which label and taint the nodes get (the node group's labels and taint below) and that
  # each has one nvidia.com/gpu (single-GPU instance types only, variables.tf). Without them a
  # pending GPU pod would never scale the group up from zero.
  gpu_node_template_tags = {
    "k8s.io/cluster-autoscaler/node-template/label/flightdeck.io/node-pool" = "gpu"
    "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu"          = "true:NoSchedule"
    "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"      = "1"
  }
}

data "aws_iam_policy_document" "cluster_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.name}-cluster"
  assume_role_policy = data.aws_iam_policy_document.cluster_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

resource "aws_cloudwatch_log_group" "cluster" {
  # EKS writes to exactly this name; creating it first sets retention and encryption.
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_eks_cluster" "this" {
  name                      = var.name
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.cluster.arn
  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  vpc_config {
    subnet_ids              = var.subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = length(var.public_access_cidrs) > 0
    public_access_cidrs     = length(var.public_access_cidrs) > 0 ? var.public_access_cidrs : null
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = var.kms_key_arn
    }
  }

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy_attachment.cluster, aws_cloudwatch_log_group.cluster]
}

# IRSA: pods' service accounts assume IAM roles (modules/iam) through this provider.
data "tls_certificate" "oidc" {
  url = aws_eks_cluster.this.identity[0].oidc[0].issuer
}

resource "aws_iam_openid_connect_provider" "this" {
  url             = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = [data.tls_certificate.oidc.certificates[0].sha1_fingerprint]
  tags            = var.tags
}

data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
  tags               = var.tags
}

# Nodes get only what the kubelet, the VPC CNI and image pulls need; workloads use IRSA roles.
resource "aws_iam_role_policy_attachment" "node" {
  for_each   = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"])
  role       = aws_iam_role.node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.key}"
}

# IMDSv2 only, hop limit 1: pods cannot borrow the node's role through the metadata service.
resource "aws_launch_template" "node" {
  for_each = toset(["system", "gpu"])
  name     = "${var.name}-${each.key}"
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = each.key == "gpu" ? 200 : 100
      volume_type = "gp3"
      encrypted   = true
      kms_key_id  = var.kms_key_arn
    }
  }
  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-${each.key}" })
  }
  tags = var.tags
}

# CPU nodes: Airflow, KFP, stage pods, monitoring.
resource "aws_eks_node_group" "system" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "system"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  ami_type        = "AL2023_x86_64_STANDARD"
  instance_types  = var.system_node_group.instance_types
  labels          = { "flightdeck.io/node-pool" = "system" }

  scaling_config {
    min_size     = var.system_node_group.min_size
    max_size     = var.system_node_group.max_size
    desired_size = var.system_node_group.desired_size
  }

  launch_template {
    id      = aws_launch_template.node["system"].id
    version = aws_launch_template.node["system"].latest_version
  }

  update_config {
    max_unavailable = 1
  }

  # The cluster autoscaler owns the desired size once the group exists; an apply must not reset it.
  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy_attachment.node]
}

# GPU nodes (EKS's NVIDIA AMI: driver and container toolkit). Tainted, so that only pods that
# tolerate nvidia.com/gpu (Triton, training) are scheduled on these expensive machines.
resource "aws_eks_node_group" "gpu" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "gpu"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  ami_type        = "AL2023_x86_64_NVIDIA"
  instance_types  = var.gpu_node_group.instance_types
  labels          = { "flightdeck.io/node-pool" = "gpu" }

  taint {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  scaling_config {
    min_size     = var.gpu_node_group.min_size
    max_size     = var.gpu_node_group.max_size
    desired_size = var.gpu_node_group.desired_size
  }

  launch_template {
    id      = aws_launch_template.node["gpu"].id
    version = aws_launch_template.node["gpu"].latest_version
  }

  update_config {
    max_unavailable = 1
  }

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  tags       = var.tags
  depends_on = [aws_iam_role_policy_attachment.node]
}

# EKS tags a managed node group's ASG for auto-discovery (k8s.io/cluster-autoscaler/enabled and
# .../<cluster>) but copies neither the node group's tags nor its labels and taints onto it.
resource "aws_autoscaling_group_tag" "gpu_node_template" {
  for_each               = local.gpu_node_template_tags
  autoscaling_group_name = one(aws_eks_node_group.gpu.resources[0].autoscaling_groups[*].name)
  tag {
    key                 = each.key
    value               = each.value
    propagate_at_launch = false
  }
}

# Advertises nvidia.com/gpu on the GPU nodes; it tolerates their taint and runs only there.
resource "helm_release" "nvidia_device_plugin" {
  name             = "nvidia-device-plugin"
  repository       = "https://nvidia.github.io/k8s-device-plugin"
  chart            = "nvidia-device-plugin"
  version          = var.nvidia_device_plugin_version
  namespace        = "nvidia-device-plugin"
  create_namespace = true
  atomic           = true

  values = [yamlencode({
    nodeSelector = { "flightdeck.io/node-pool" = "gpu" }
    tolerations  = [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }]
  })]

  depends_on = [aws_eks_node_group.gpu]
}
