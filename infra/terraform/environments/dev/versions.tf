terraform {
  # 1.10: the S3 backend's native locking (use_lockfile, below); 1.9 already: variable validations
  # that refer to other variables (modules/environment checks GPU capacity against Triton's replicas).
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.90"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.35"
    }
    kustomization = {
      source  = "kbst/kustomization"
      version = "~> 0.9"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # Remote state: one S3 bucket per AWS account (versioned, SSE-KMS, public access blocked),
  # created once by hand or by a bootstrap stack, with S3-native state locking (`use_lockfile`:
  # Terraform >= 1.10, hence required_version above; no DynamoDB table). Uncomment, fill in the
  # bucket and key alias, then `terraform init -migrate-state`.
  # It is commented out because the bucket is per account: until it is filled in, a plain
  # `terraform init` keeps local state. `make infra-validate` runs `terraform init -backend=false`,
  # which skips the backend block whether it is commented or not, so it needs no AWS account.
  #
  # backend "s3" {
  #   bucket       = "<account-id>-flightdeck-tfstate"
  #   key          = "flightdeck/dev/terraform.tfstate"
  #   region       = "us-east-1"
  #   encrypt      = true
  #   kms_key_id   = "alias/flightdeck-tfstate"
  #   use_lockfile = true
  # }
}
