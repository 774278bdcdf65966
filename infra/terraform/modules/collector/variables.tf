variable "name" {
  description = "Name of the ECS cluster and service and prefix of everything else (for example \"mcp-global-otel\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name))
    error_message = "name must be 3-24 lowercase letters, digits and hyphens."
  }
}

variable "environment" {
  description = "Deployment environment (Collector env DEPLOYMENT_ENVIRONMENT)."
  type        = string
  default     = "production"
}

variable "vpc_id" {
  description = "VPC of the service and its load balancer."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets of the NLB, at least two zones."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "public_subnet_ids needs subnets in at least two availability zones."
  }
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks, at least two zones, with egress to Amazon Managed Prometheus."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids needs subnets in at least two availability zones."
  }
}

variable "internal" {
  description = "Make the NLB internal (regions then reach it over peering or Transit Gateway)."
  type        = bool
  default     = false
}

variable "allowed_cidr_blocks" {
  description = "Who may send OTLP: the regions' egress addresses (their egress_cidr_blocks outputs). Adding a region to the federation adds its addresses here; empty admits nobody yet. Regions also authenticate with the bearer token."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.allowed_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "allowed_cidr_blocks must be valid CIDR blocks."
  }
}

variable "certificate_arn" {
  description = "ACM certificate of the TLS listener that receives OTLP/gRPC on 4317."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:(acm|iam):", var.certificate_arn))
    error_message = "certificate_arn must be an ACM (or IAM server) certificate ARN."
  }
}

variable "ssl_policy" {
  description = "TLS policy of the TLS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "image" {
  description = "Pinned OpenTelemetry Collector image (contrib or AWS Distro for OpenTelemetry)."
  type        = string
  default     = "otel/opentelemetry-collector-contrib:0.159.0"

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9_.-]+|@sha256:[a-f0-9]{64})$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image must be pinned to a version tag or digest (not latest)."
  }
}

variable "config" {
  description = "Collector configuration YAML (the repository's otel/collector/federation.yaml); passed as OTEL_COLLECTOR_CONFIG. It must receive OTLP/gRPC on 0.0.0.0:<otlp_grpc_port> and serve the health_check extension on 0.0.0.0:<health_check_port>."
  type        = string

  validation {
    condition     = can(yamldecode(var.config).service.pipelines)
    error_message = "config must be a Collector configuration with service.pipelines."
  }

  validation {
    condition     = length(var.config) <= 32768
    error_message = "config must stay under 32 KiB (task definitions are limited to 64 KiB)."
  }
}

variable "environment_variables" {
  description = "Extra plain environment variables of the Collector."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Secret environment variables of the Collector: name => Secrets Manager secret ARN, optionally with a JSON key (for example FEDERATION_BEARER_TOKEN, CENTRAL_LOGS_USERNAME, CENTRAL_LOGS_PASSWORD)."
  type        = map(string)
  default     = {}
}

variable "otlp_grpc_port" {
  description = "Port of the OTLP/gRPC receiver, and of the TLS listener in front of it."
  type        = number
  default     = 4317
}

variable "health_check_port" {
  description = "Container port of the health_check extension."
  type        = number
  default     = 13133
}

variable "health_check_path" {
  description = "Path of the health_check extension."
  type        = string
  default     = "/"
}

variable "prometheus_workspace_arn" {
  description = "Global Amazon Managed Prometheus workspace the Collector remote-writes to; the task role may write to it and nothing else."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:aps:[a-z0-9-]+:[0-9]{12}:workspace/", var.prometheus_workspace_arn))
    error_message = "prometheus_workspace_arn must be an Amazon Managed Prometheus workspace ARN."
  }
}

variable "prometheus_remote_write_url" {
  description = "Remote-write URL of that workspace."
  type        = string
}

variable "remote_write_url_variable" {
  description = "Name of the environment variable the configuration reads the remote-write URL from."
  type        = string
  default     = "AMP_GLOBAL_REMOTE_WRITE_URL"
}

variable "cpu" {
  description = "Task CPU units."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Task memory (MiB)."
  type        = number
  default     = 1024
}

variable "desired_count" {
  description = "Tasks at creation (autoscaling owns the count afterwards)."
  type        = number
  default     = 2
}

variable "enable_autoscaling" {
  description = "Register the service with Application Auto Scaling (target tracking on CPU). Off creates no scaling resources; the count then stays where desired_count put it at creation."
  type        = bool
  default     = true
}

variable "min_capacity" {
  description = "Fewest tasks under autoscaling."
  type        = number
  default     = 2
}

variable "max_capacity" {
  description = "Most tasks under autoscaling."
  type        = number
  default     = 6

  validation {
    condition     = var.max_capacity >= var.min_capacity && var.min_capacity >= 1
    error_message = "max_capacity must be at least min_capacity, and min_capacity at least 1."
  }
}

variable "cpu_target_percent" {
  description = "Average service CPU that autoscaling keeps."
  type        = number
  default     = 60
}

variable "log_retention_days" {
  description = "Retention of the Collector's log group."
  type        = number
  default     = 30
}

variable "kms_key_arn" {
  description = "KMS key of the log group and secrets. Null uses AWS managed keys."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Protect the NLB from deletion (turn off before `terraform destroy`)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
