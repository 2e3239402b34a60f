# S3 buckets for data, artifacts and models, plus one bucket for their access logs. Every
# bucket: private (public access blocked, owner-enforced ACLs), SSE-KMS, versioned, TLS only,
# lifecycle rules.
data "aws_caller_identity" "current" {}

locals {
  suffix  = data.aws_caller_identity.current.account_id
  buckets = merge({ for k, v in var.buckets : k => merge(v, { is_log = false }) }, { logs = { noncurrent_version_expiration_days = 30, is_log = true } })
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:one region per environment; versioning and noncurrent versions protect against loss, cross-region replication is a cost decision left to prod owners
  #checkov:skip=CKV2_AWS_62:no consumer of S3 event notifications: the stages publish and read through Airflow and KFP
  for_each      = local.buckets
  bucket        = "${var.name}-${each.key}-${local.suffix}"
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { Purpose = each.key })
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = aws_s3_bucket.this
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this
  bucket   = each.value.id

  rule {
    id     = "housekeeping"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
    noncurrent_version_expiration {
      noncurrent_days = local.buckets[each.key].noncurrent_version_expiration_days
    }
  }

  dynamic "rule" {
    for_each = local.buckets[each.key].is_log ? [1] : []
    content {
      id     = "expire-access-logs"
      status = "Enabled"
      filter {}
      expiration {
        days = var.access_log_retention_days
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

# Access logs of the three buckets go to the logs bucket (which does not log itself).
resource "aws_s3_bucket_logging" "this" {
  for_each      = { for k, b in aws_s3_bucket.this : k => b if !local.buckets[k].is_log }
  bucket        = each.value.id
  target_bucket = aws_s3_bucket.this["logs"].id
  target_prefix = "${each.key}/"
}

data "aws_iam_policy_document" "bucket" {
  for_each = aws_s3_bucket.this

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      each.value.arn,
      "${each.value.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  dynamic "statement" {
    for_each = local.buckets[each.key].is_log ? [1] : []
    content {
      sid       = "S3ServerAccessLogs"
      actions   = ["s3:PutObject"]
      resources = ["${each.value.arn}/*"]
      principals {
        type        = "Service"
        identifiers = ["logging.s3.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [data.aws_caller_identity.current.account_id]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each   = aws_s3_bucket.this
  bucket     = each.value.id
  policy     = data.aws_iam_policy_document.bucket[each.key].json
  depends_on = [aws_s3_bucket_public_access_block.this]
}
