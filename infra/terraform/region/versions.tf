terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100.0"
    }
  }

  # Remote, encrypted, locked state: the state holds the Redis AUTH token and the
  # Grafana publisher token. Configure at init, for example
  #   terraform init -backend-config=bucket=... -backend-config=key=mcp/use1.tfstate \
  #     -backend-config=region=... -backend-config=use_lockfile=true -backend-config=encrypt=true
  backend "s3" {}
}
