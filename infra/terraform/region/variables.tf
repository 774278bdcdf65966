# ------------------------------------------------------------------ identity

variable "name" {
  description = "Name of this region in the federation (for example \"use1\"); resources are named mcp-<name>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name must be 3-20 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "AWS region to provision (for example \"us-east-1\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "environment" {
  description = "Deployment environment (tags and the deployment.environment.name resource attribute)."
  type        = string
  default     = "production"
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- the service

variable "image" {
  description = "Gateway container image with an explicit tag or digest (the TCP bridge runs from it too)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate (in this region) of the HTTPS listener; it must cover dns.http_name when DNS is managed here."
  type        = string
}

variable "federation_endpoint" {
  description = "OTLP/gRPC endpoint (host:4317, TLS) of the federation Collector: the global root's federation_endpoint output (FEDERATION_OTLP_ENDPOINT)."
  type        = string
}

variable "federation_token_secret_arn" {
  description = "Secrets Manager secret with the federation bearer token (the global root's federation_token_secret_arns output for this region), given to the Collector as FEDERATION_BEARER_TOKEN."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.federation_token_secret_arn))
    error_message = "federation_token_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "jaeger_otlp_endpoint" {
  description = "Jaeger's OTLP/gRPC endpoint (host:4317, TLS) for the region's traces (JAEGER_OTLP_ENDPOINT)."
  type        = string
}

variable "logs_endpoint" {
  description = "URL of the region's Elasticsearch-compatible log store (LOGS_ENDPOINT)."
  type        = string
}

variable "logs_index" {
  description = "Log index (LOGS_INDEX). Null keeps the Collector configuration's default."
  type        = string
  default     = null
}

variable "logs_credentials_secret_arn" {
  description = "Secrets Manager secret holding JSON {\"username\": ..., \"password\": ...} for the log store (LOGS_USERNAME, LOGS_PASSWORD)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.logs_credentials_secret_arn))
    error_message = "logs_credentials_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "trace_slow_threshold_ms" {
  description = "Traces slower than this are always kept (TRACE_SLOW_THRESHOLD_MS). Null keeps the configuration's default."
  type        = number
  default     = null
}

variable "trace_sample_percentage" {
  description = "Share of the other traces kept (TRACE_SAMPLE_PERCENTAGE). Null keeps the configuration's default."
  type        = number
  default     = null
}

variable "collector_image" {
  description = "Collector image of the sidecar. Null runs the one pinned in otel/collector/distribution.yaml."
  type        = string
  default     = null
}

variable "otel_dir" {
  description = "Directory with the Collector configurations and Prometheus rule files. Null means the repository's otel/ directory."
  type        = string
  default     = null
}

variable "gateway_config_file" {
  description = "Local path of the gateway YAML configuration to deploy (namespaces, backends, auth, limits; allowed_hosts must list the names clients use). No secrets in it: those go in gateway_secrets."
  type        = string
  default     = null
}

variable "gateway_config_path" {
  description = "Path of a configuration baked into the image, instead of gateway_config_file."
  type        = string
  default     = null

  validation {
    condition     = (var.gateway_config_file == null) != (var.gateway_config_path == null)
    error_message = "Set exactly one of gateway_config_file and gateway_config_path: without a configuration the gateway would run its embedded demo."
  }
}

variable "gateway_environment" {
  description = "Extra plain environment variables of the gateway."
  type        = map(string)
  default     = {}
}

variable "gateway_secrets" {
  description = "Extra secret environment variables of the gateway: name => Secrets Manager secret ARN."
  type        = map(string)
  default     = {}
}

variable "http_ingress_cidr_blocks" {
  description = "Who may reach HTTPS (443)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "tcp_ingress_cidr_blocks" {
  description = "Who may reach MCPB/TCP (8445)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "tcp_tls_certificate_arn" {
  description = "Certificate to terminate TLS on 8445. Null keeps plain TCP."
  type        = string
  default     = null
}

variable "dns" {
  description = "Route 53 records to create: alias records http_name (ALB) and tcp_name (NLB) in zone_id. Null creates none and the outputs use the load balancers' DNS names."
  type = object({
    zone_id   = string
    http_name = string
    tcp_name  = string
  })
  default = null
}

variable "cpu" {
  description = "Task CPU units."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Task memory (MiB)."
  type        = number
  default     = 2048
}

variable "desired_count" {
  description = "Tasks at creation."
  type        = number
  default     = 2
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
}

variable "enable_autoscaling" {
  description = "Target tracking autoscaling of the service. Off where the API is unavailable (local emulators): the count then stays where desired_count put it."
  type        = bool
  default     = true
}

variable "cpu_target_percent" {
  description = "Average CPU that autoscaling keeps."
  type        = number
  default     = 60
}

variable "requests_per_target" {
  description = "ALB requests per task per minute that autoscaling keeps (null: CPU only)."
  type        = number
  default     = 3000
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64 (cheaper; the gateway and Collector images must be multi-arch)."
  type        = string
  default     = "X86_64"
}

variable "fargate_spot_weight" {
  description = "Weight of Fargate Spot next to on-demand Fargate above min_capacity (0: on-demand only)."
  type        = number
  default     = 0
}

variable "container_insights" {
  description = "CloudWatch Container Insights on the cluster."
  type        = bool
  default     = true
}

variable "deregistration_delay_seconds" {
  description = "How long a stopping task keeps its open streams and MCPB connections."
  type        = number
  default     = 120
}

variable "deletion_protection" {
  description = "Protect the load balancers from deletion (set false and apply before tearing down)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the log groups."
  type        = number
  default     = 30
}

# -------------------------------------------------------------------- network

variable "create_vpc" {
  description = "Create the VPC; false brings your own (vpc_id, public_subnet_ids, private_subnet_ids)."
  type        = bool
  default     = true
}

variable "vpc_cidr" {
  description = "CIDR of the created VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "az_count" {
  description = "Availability zones of the created VPC."
  type        = number
  default     = 2
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper, less available)."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "Existing VPC (create_vpc = false)."
  type        = string
  default     = null
}

variable "public_subnet_ids" {
  description = "Existing public subnets (create_vpc = false)."
  type        = list(string)
  default     = []
}

variable "private_subnet_ids" {
  description = "Existing private subnets (create_vpc = false)."
  type        = list(string)
  default     = []
}

variable "existing_egress_cidr_blocks" {
  description = "Egress addresses of a brought VPC (reported for the federation's allow list)."
  type        = list(string)
  default     = []
}

# ----------------------------------------------------------- managed services

variable "enable_redis" {
  description = "Create the ElastiCache replication group. Off only for emulators or with your own Redis (redis_url, redis_auth_secret_arn)."
  type        = bool
  default     = true
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_num_cache_clusters" {
  description = "Redis nodes (primary plus replicas, at least 2)."
  type        = number
  default     = 2
}

variable "redis_auth_secret_arn" {
  description = "Existing secret with the Redis AUTH token; with enable_redis it is used instead of a generated one, without it the gateway gets it as MCP_GATEWAY_REDIS_PASSWORD."
  type        = string
  default     = null
}

variable "redis_url" {
  description = "Your own Redis (rediss://host:port) when enable_redis is false."
  type        = string
  default     = null
}

variable "redis_auth_token_update_strategy" {
  description = "How a rotated Redis AUTH token is applied: ROTATE (old and new both valid) or SET (only the new one)."
  type        = string
  default     = "ROTATE"
}

variable "redis_apply_immediately" {
  description = "Apply Redis changes (such as a rotated AUTH token) immediately."
  type        = bool
  default     = false
}

variable "enable_grafana" {
  description = "Create the region's Amazon Managed Grafana workspace. Off where the API is unavailable (local emulators)."
  type        = bool
  default     = true
}

variable "grafana_authentication_providers" {
  description = "Grafana sign-in: AWS_SSO and/or SAML."
  type        = list(string)
  default     = ["AWS_SSO"]
}

variable "grafana_admin_group_ids" {
  description = "IAM Identity Center groups that administer Grafana."
  type        = list(string)
  default     = []
}

variable "grafana_viewer_group_ids" {
  description = "IAM Identity Center groups that view Grafana."
  type        = list(string)
  default     = []
}

variable "grafana_token_generation" {
  description = "Bump to replace the dashboards publisher token."
  type        = number
  default     = 1
}

variable "enable_alertmanager" {
  description = "Load the Alertmanager definition (alerts to SNS). Off where the API is unavailable (local emulators)."
  type        = bool
  default     = true
}

variable "enable_prometheus_logging" {
  description = "Send the workspace's rule and alerting errors to CloudWatch Logs."
  type        = bool
  default     = true
}
