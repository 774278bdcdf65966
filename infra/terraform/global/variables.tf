variable "name" {
  description = "Name of the federation (resources are named mcp-<name>)."
  type        = string
  default     = "global"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,12}[a-z0-9]$", var.name))
    error_message = "name must be 3-14 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "AWS region of the global workspace, the central Collector and the global Grafana."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "environment" {
  description = "Deployment environment (tags, Collector env DEPLOYMENT_ENVIRONMENT)."
  type        = string
  default     = "production"
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "otel_dir" {
  description = "Directory with the Collector configurations and Prometheus rule files. Null means the repository's otel/ directory."
  type        = string
  default     = null
}

variable "collector_config_file" {
  description = "Configuration of the central Collector, relative to otel_dir."
  type        = string
  default     = "collector/federation.yaml"
}

variable "collector_image" {
  description = "Image of the federation Collector. Null runs the one pinned in otel/collector/distribution.yaml."
  type        = string
  default     = null
}

variable "certificate_arn" {
  description = "ACM certificate (in this region) of the federation Collector's TLS listener (4317); it must cover dns.otlp_name, the name regions dial."
  type        = string
}

variable "central_jaeger_otlp_endpoint" {
  description = "The central Jaeger's OTLP/gRPC endpoint (host:4317, TLS) (CENTRAL_JAEGER_OTLP_ENDPOINT)."
  type        = string
}

variable "central_logs_endpoint" {
  description = "URL of the central Elasticsearch-compatible log store (CENTRAL_LOGS_ENDPOINT)."
  type        = string
}

variable "central_logs_index" {
  description = "Central log index (CENTRAL_LOGS_INDEX). Null keeps the configuration's default."
  type        = string
  default     = null
}

variable "central_logs_credentials_secret_arn" {
  description = "Secrets Manager secret holding JSON {\"username\": ..., \"password\": ...} for the central log store."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.central_logs_credentials_secret_arn))
    error_message = "central_logs_credentials_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "allowed_cidr_blocks" {
  description = "Egress addresses of the federated regions (each region's egress_cidr_blocks output). Adding a region adds its addresses; empty (the first apply, before any region exists) admits nobody."
  type        = list(string)
  default     = []
}

variable "federation_token_secret_arn" {
  description = "Existing secret with the federation bearer token (FEDERATION_BEARER_TOKEN). Null creates one with a generated token."
  type        = string
  default     = null
}

variable "federation_token_replica_regions" {
  description = "Regions the created federation token secret is replicated to, so each region's tasks read it locally (list every federated region other than this one)."
  type        = list(string)
  default     = []
}

variable "region_workspaces" {
  description = "The regions' Prometheus workspaces the global Grafana also views: region name => the region root's prometheus_workspace output ({ arn, endpoint, region })."
  type = map(object({
    arn      = string
    endpoint = string
    region   = string
  }))
  default = {}
}

variable "load_rules" {
  description = "Load otel/prometheus/rules into the global workspace too (alerts on the federated series)."
  type        = bool
  default     = true
}

variable "dns" {
  description = "Route 53 alias record otlp_name (the federation Collector's NLB) in zone_id. Null creates none (then the certificate must match the NLB's DNS name, which it cannot: set this in production)."
  type = object({
    zone_id   = string
    otlp_name = string
  })
  default = null
}

variable "collector_cpu" {
  description = "Central Collector task CPU units."
  type        = number
  default     = 512
}

variable "collector_memory" {
  description = "Central Collector task memory (MiB)."
  type        = number
  default     = 1024
}

variable "collector_desired_count" {
  description = "Central Collector tasks at creation."
  type        = number
  default     = 2
}

variable "collector_enable_autoscaling" {
  description = "Target tracking autoscaling of the central Collector. Off where the API is unavailable (local emulators)."
  type        = bool
  default     = true
}

variable "collector_min_capacity" {
  description = "Fewest central Collector tasks."
  type        = number
  default     = 2
}

variable "collector_max_capacity" {
  description = "Most central Collector tasks."
  type        = number
  default     = 6
}

variable "deletion_protection" {
  description = "Protect the federation Collector's NLB from deletion."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the log groups."
  type        = number
  default     = 30
}

variable "create_vpc" {
  description = "Create the VPC; false brings your own (vpc_id, public_subnet_ids, private_subnet_ids)."
  type        = bool
  default     = true
}

variable "vpc_cidr" {
  description = "CIDR of the created VPC."
  type        = string
  default     = "10.90.0.0/16"
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones."
  type        = bool
  default     = true
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

variable "enable_grafana" {
  description = "Create the global Grafana. Off where the API is unavailable (local emulators)."
  type        = bool
  default     = true
}

variable "grafana_authentication_providers" {
  description = "Grafana sign-in: AWS_SSO and/or SAML."
  type        = list(string)
  default     = ["AWS_SSO"]
}

variable "grafana_admin_group_ids" {
  description = "IAM Identity Center groups that administer the global Grafana."
  type        = list(string)
  default     = []
}

variable "grafana_viewer_group_ids" {
  description = "IAM Identity Center groups that view the global Grafana."
  type        = list(string)
  default     = []
}

variable "grafana_token_generation" {
  description = "Bump to replace the dashboards publisher token."
  type        = number
  default     = 1
}

variable "enable_alertmanager" {
  description = "Load the Alertmanager definition into the global workspace. Off where the API is unavailable (local emulators)."
  type        = bool
  default     = true
}

variable "enable_prometheus_logging" {
  description = "Send the global workspace's rule and alerting errors to CloudWatch Logs."
  type        = bool
  default     = true
}
