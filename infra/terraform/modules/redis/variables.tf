variable "name" {
  description = "Name of the replication group and prefix of its companions (for example \"mcp-use1\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,34}[a-z0-9]$", var.name))
    error_message = "name must be 2-36 lowercase letters, digits and hyphens, starting with a letter (the group id appends \"-redis\")."
  }
}

variable "vpc_id" {
  description = "VPC of the replication group."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the cache subnet group, in at least two availability zones."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids needs at least two subnets: multi-AZ failover needs a replica in another zone."
  }
}

variable "allowed_security_group_ids" {
  description = "Security groups allowed to connect on the Redis port, keyed by a static name (for example { gateway = sg-... }); static keys keep the plan known before the groups exist."
  type        = map(string)
  default     = {}
}

variable "allowed_cidr_blocks" {
  description = "CIDR blocks allowed to connect on the Redis port (for example an operator bastion subnet)."
  type        = list(string)
  default     = []
}

variable "engine_version" {
  description = "Redis engine version (7.x)."
  type        = string
  default     = "7.1"

  validation {
    condition     = can(regex("^7\\.", var.engine_version))
    error_message = "engine_version must be a Redis 7 version (for example \"7.1\")."
  }
}

variable "parameter_group_name" {
  description = "Cache parameter group (cluster mode disabled, Redis 7 family)."
  type        = string
  default     = "default.redis7"
}

variable "node_type" {
  description = "Cache node type."
  type        = string
  default     = "cache.t4g.small"

  validation {
    condition     = startswith(var.node_type, "cache.")
    error_message = "node_type must be an ElastiCache node type such as cache.t4g.small or cache.r7g.large."
  }
}

variable "num_cache_clusters" {
  description = "Nodes in the replication group: one primary plus replicas. At least 2 for automatic failover and multi-AZ."
  type        = number
  default     = 2

  validation {
    condition     = var.num_cache_clusters >= 2 && var.num_cache_clusters <= 6
    error_message = "num_cache_clusters must be between 2 and 6: automatic failover needs at least one replica."
  }
}

variable "port" {
  description = "Redis port."
  type        = number
  default     = 6379
}

variable "auth_token_secret_arn" {
  description = "Existing Secrets Manager secret whose current value is the Redis AUTH token (16-128 printable characters, no spaces, / \" or @). Null creates a secret with a generated token."
  type        = string
  default     = null

  validation {
    condition     = var.auth_token_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.auth_token_secret_arn))
    error_message = "auth_token_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest and of the created secret. Null uses the AWS managed keys."
  type        = string
  default     = null
}

variable "snapshot_retention_limit" {
  description = "Days of automatic snapshots to keep (0 disables them)."
  type        = number
  default     = 1

  validation {
    condition     = var.snapshot_retention_limit >= 0 && var.snapshot_retention_limit <= 35
    error_message = "snapshot_retention_limit must be between 0 and 35 days."
  }
}

variable "maintenance_window" {
  description = "Weekly maintenance window (UTC)."
  type        = string
  default     = "sun:05:00-sun:06:00"
}

variable "apply_immediately" {
  description = "Apply modifications now instead of in the maintenance window (needed to rotate the AUTH token without waiting)."
  type        = bool
  default     = false
}

variable "auth_token_update_strategy" {
  description = "How a changed AUTH token is applied: ROTATE keeps the old token valid alongside the new one (zero downtime), SET then drops the old one."
  type        = string
  default     = "ROTATE"

  validation {
    condition     = contains(["ROTATE", "SET"], var.auth_token_update_strategy)
    error_message = "auth_token_update_strategy must be ROTATE or SET."
  }
}

variable "enable_slow_log" {
  description = "Deliver the Redis slow log to CloudWatch Logs."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the slow log group."
  type        = number
  default     = 30
}

variable "notification_topic_arn" {
  description = "SNS topic for ElastiCache events (failovers, maintenance). Null for none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
