terraform {
  required_version = ">= 1.6.0, < 2.0.0"

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
  # created once by hand or by a bootstrap stack, with S3-native state locking (Terraform >= 1.10,
  # no DynamoDB table). Uncomment, fill in, then `terraform init -migrate-state`.
  # Left commented so `terraform init -backend=false && terraform validate` (make infra-validate)
  # and local experiments need no AWS account.
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
