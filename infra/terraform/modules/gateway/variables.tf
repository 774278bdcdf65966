# ------------------------------------------------------------------ identity

variable "name" {
  description = "Name of the ECS cluster and service and prefix of everything else (for example \"mcp-use1\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name))
    error_message = "name must be 3-24 lowercase letters, digits and hyphens (load balancer and target group names append up to 8 characters)."
  }
}

variable "region_label" {
  description = "Name of this region in the federation; becomes the mcp.region resource attribute and the Collector's MCP_REGION."
  type        = string
}

variable "environment" {
  description = "Deployment environment (resource attribute deployment.environment.name)."
  type        = string
  default     = "production"
}

# ------------------------------------------------------------------- network

variable "vpc_id" {
  description = "VPC of the service and load balancers."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancers (public unless internal), at least two zones."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "public_subnet_ids needs subnets in at least two availability zones."
  }
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks, at least two zones, with egress to AWS APIs (NAT or VPC endpoints)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids needs subnets in at least two availability zones."
  }
}

variable "assign_public_ip" {
  description = "Give tasks public IPs (only for subnets without NAT; keep false in production)."
  type        = bool
  default     = false
}

variable "internal" {
  description = "Make both load balancers internal (reachable from the VPC and peered networks only)."
  type        = bool
  default     = false
}

variable "http_ingress_cidr_blocks" {
  description = "Who may reach the HTTPS listener (443, and 80 which redirects to it)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "tcp_ingress_cidr_blocks" {
  description = "Who may reach the MCPB/TCP listener on 8445."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

# ------------------------------------------------------------ load balancers

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:(acm|iam):", var.certificate_arn))
    error_message = "certificate_arn must be an ACM (or IAM server) certificate ARN."
  }
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS (and TLS) listeners."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "http_redirect" {
  description = "Listen on 80 and redirect to HTTPS."
  type        = bool
  default     = true
}

variable "alb_idle_timeout_seconds" {
  description = "ALB idle timeout. SSE streams (GET /mcp) and WebSockets (/ws) stay open between messages: keep it well above the gateway's keep-alive interval."
  type        = number
  default     = 3600

  validation {
    condition     = var.alb_idle_timeout_seconds >= 300 && var.alb_idle_timeout_seconds <= 4000
    error_message = "alb_idle_timeout_seconds must be between 300 (streams need minutes) and 4000 (the ALB maximum)."
  }
}

variable "tcp_tls_certificate_arn" {
  description = "Certificate to terminate TLS on the 8445 listener. Null keeps plain TCP (MCPB itself has no TLS; then restrict tcp_ingress_cidr_blocks)."
  type        = string
  default     = null
}

variable "tcp_idle_timeout_seconds" {
  description = "NLB idle timeout of MCPB/TCP connections (plain TCP listener only)."
  type        = number
  default     = 3600

  validation {
    condition     = var.tcp_idle_timeout_seconds >= 60 && var.tcp_idle_timeout_seconds <= 6000
    error_message = "tcp_idle_timeout_seconds must be between 60 and 6000."
  }
}

variable "deregistration_delay_seconds" {
  description = "How long a stopping task keeps its open streams and connections before the load balancers cut them."
  type        = number
  default     = 120
}

variable "health_check_path" {
  description = "Readiness path checked by both load balancers and the container health check."
  type        = string
  default     = "/readyz"
}

variable "deletion_protection" {
  description = "Protect both load balancers from deletion (turn off before `terraform destroy`)."
  type        = bool
  default     = false
}

variable "access_logs_bucket" {
  description = "S3 bucket for ALB access logs. Null disables them."
  type        = string
  default     = null
}

# ---------------------------------------------------------------- containers

variable "image" {
  description = "Gateway container image (tag or digest); the TCP bridge runs from the same image unless bridge_image is set."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9_.-]+|@sha256:[a-f0-9]{64})$", var.image))
    error_message = "image must carry an explicit tag or digest."
  }
}

variable "bridge_image" {
  description = "TCP bridge image. Null uses image."
  type        = string
  default     = null
}

variable "gateway_command" {
  description = "Command of the gateway container. Null keeps the image's default (mcp-gateway serve)."
  type        = list(string)
  default     = null
}

variable "gateway_config" {
  description = "Gateway YAML configuration (content). A short-lived init container writes it to a task volume and the gateway reads it from there (MCP_GATEWAY_CONFIG). It must hold no secrets: those come from gateway_secrets."
  type        = string
  default     = null

  validation {
    condition     = var.gateway_config == null || can(yamldecode(coalesce(var.gateway_config, "-")))
    error_message = "gateway_config must be YAML."
  }

  # The TCP bridge reaches the gateway at ws://127.0.0.1:8080/ws: with a Host allow-list,
  # the gateway would refuse it (421) unless loopback is on the list.
  validation {
    condition = var.gateway_config == null || (
      length(try(tolist(yamldecode(coalesce(var.gateway_config, "{}")).allowed_hosts), [])) == 0 ||
      contains(try(tolist(yamldecode(coalesce(var.gateway_config, "{}")).allowed_hosts), []), "127.0.0.1") ||
      contains(try(tolist(yamldecode(coalesce(var.gateway_config, "{}")).allowed_hosts), []), "127.0.0.1:8080")
    )
    error_message = "gateway_config's allowed_hosts must include 127.0.0.1: the TCP bridge in the same task connects to the gateway over loopback."
  }
}

variable "gateway_config_path" {
  description = "Path of a gateway configuration already inside the image (MCP_GATEWAY_CONFIG), instead of gateway_config. With neither, the gateway runs its embedded demo."
  type        = string
  default     = null

  validation {
    condition     = var.gateway_config_path == null || var.gateway_config == null
    error_message = "Set gateway_config or gateway_config_path, not both."
  }
}

variable "gateway_environment" {
  description = "Extra plain environment variables of the gateway container."
  type        = map(string)
  default     = {}
}

variable "gateway_secrets" {
  description = "Extra secret environment variables of the gateway container: name => Secrets Manager secret ARN."
  type        = map(string)
  default     = {}
}

variable "redis_url" {
  description = "Redis URL without credentials (rediss://host:port), given as MCP_GATEWAY_REDIS_URL. Null runs the gateway without Redis (single-replica or emulator use only)."
  type        = string
  default     = null

  validation {
    condition     = var.redis_url == null || startswith(coalesce(var.redis_url, "-"), "rediss://")
    error_message = "redis_url must use TLS (rediss://) and carry no credentials."
  }
}

variable "redis_auth_secret_arn" {
  description = "Secrets Manager secret with the Redis AUTH token, given as the secret env var MCP_GATEWAY_REDIS_PASSWORD."
  type        = string
  default     = null
}

variable "resource_attributes" {
  description = "Extra OpenTelemetry resource attributes (OTEL_RESOURCE_ATTRIBUTES) of the gateway and bridge."
  type        = map(string)
  default     = {}
}

variable "collector_image" {
  description = "Pinned OpenTelemetry Collector image (contrib or AWS Distro for OpenTelemetry; it needs the prometheusremotewrite exporter and the sigv4auth extension)."
  type        = string
  default     = "otel/opentelemetry-collector-contrib:0.159.0"

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9_.-]+|@sha256:[a-f0-9]{64})$", var.collector_image)) && !endswith(var.collector_image, ":latest")
    error_message = "collector_image must be pinned to a version tag or digest (not latest)."
  }
}

variable "collector_config" {
  description = "Collector configuration YAML (the repository's otel/collector/region.yaml); it reaches the container through the OTEL_COLLECTOR_CONFIG variable (--config=env:OTEL_COLLECTOR_CONFIG). Its $${env:...} references are served by the module (AWS_REGION, MCP_REGION, DEPLOYMENT_ENVIRONMENT, AMP_REMOTE_WRITE_URL, FEDERATION_OTLP_ENDPOINT, GATEWAY_METRICS_TARGET, BRIDGE_METRICS_TARGET) and by collector_environment and collector_secrets."
  type        = string

  validation {
    condition     = can(yamldecode(var.collector_config).service.pipelines)
    error_message = "collector_config must be a Collector configuration with service.pipelines."
  }

  validation {
    condition     = length(var.collector_config) <= 32768
    error_message = "collector_config must stay under 32 KiB (it travels in the task definition, which is limited to 64 KiB)."
  }
}

variable "collector_environment" {
  description = "Extra plain environment variables of the Collector (referenced from its configuration as $${env:NAME})."
  type        = map(string)
  default     = {}
}

variable "collector_secrets" {
  description = "Secret environment variables of the Collector: name => Secrets Manager secret ARN, optionally with a JSON key (arn:...:secret:name-AbCdEf:username::); for example FEDERATION_BEARER_TOKEN, LOGS_USERNAME, LOGS_PASSWORD."
  type        = map(string)
  default     = {}
}

variable "prometheus_workspace_arn" {
  description = "Amazon Managed Prometheus workspace the Collector remote-writes to; the task role may write to it and nothing else."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:aps:[a-z0-9-]+:[0-9]{12}:workspace/", var.prometheus_workspace_arn))
    error_message = "prometheus_workspace_arn must be an Amazon Managed Prometheus workspace ARN."
  }
}

variable "prometheus_remote_write_url" {
  description = "Remote-write URL of that workspace (Collector env AMP_REMOTE_WRITE_URL)."
  type        = string
}

variable "federation_endpoint" {
  description = "OTLP/gRPC endpoint (host:port, TLS) of the federation Collector this region forwards to (Collector env FEDERATION_OTLP_ENDPOINT). Null leaves the variable unset."
  type        = string
  default     = null

  validation {
    condition     = var.federation_endpoint == null || can(regex("^(https://)?[A-Za-z0-9.-]+:[0-9]+$", coalesce(var.federation_endpoint, "-")))
    error_message = "federation_endpoint must be host:port (OTLP/gRPC over TLS), optionally prefixed with https://."
  }
}

# ------------------------------------------------------------ task and scale

variable "cpu" {
  description = "Task CPU units (shared by the gateway, bridge and Collector)."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Task memory (MiB)."
  type        = number
  default     = 2048
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64 (Graviton, cheaper; the images must be multi-arch)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "desired_count" {
  description = "Tasks at creation (autoscaling owns the count afterwards)."
  type        = number
  default     = 2
}

variable "enable_autoscaling" {
  description = "Register the service with Application Auto Scaling: target tracking on CPU (and on ALB requests per target when requests_per_target is set) between min_capacity and max_capacity. Off creates no scaling resources; the count then stays where desired_count put it at creation."
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
  default     = 10

  validation {
    condition     = var.max_capacity >= var.min_capacity && var.min_capacity >= 1
    error_message = "max_capacity must be at least min_capacity, and min_capacity at least 1."
  }
}

variable "cpu_target_percent" {
  description = "Average service CPU that autoscaling keeps."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_percent > 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 10 and 90."
  }
}

variable "requests_per_target" {
  description = "ALB requests per task per minute that autoscaling keeps. Null disables this policy."
  type        = number
  default     = 3000
}

variable "fargate_spot_weight" {
  description = "Weight of FARGATE_SPOT next to FARGATE (weight 1, base min_capacity). 0 runs on on-demand Fargate only."
  type        = number
  default     = 0
}

variable "container_insights" {
  description = "CloudWatch Container Insights on the cluster (task and container metrics; billed as custom metrics)."
  type        = bool
  default     = true
}

variable "enable_execute_command" {
  description = "Allow `aws ecs execute-command` into the tasks."
  type        = bool
  default     = false
}

variable "wait_for_steady_state" {
  description = "Make terraform apply wait until the service is stable."
  type        = bool
  default     = false
}

variable "image_pull_repository_arns" {
  description = "ECR repositories the tasks may pull from. Empty means every repository of this account."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Retention of the container log group."
  type        = number
  default     = 30
}

variable "kms_key_arn" {
  description = "KMS key of the log group and of the secrets (the execution role may decrypt with it). Null uses AWS managed keys."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
