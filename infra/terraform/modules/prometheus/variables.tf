variable "name" {
  description = "Workspace alias and name prefix (for example \"mcp-use1\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,62}$", var.name))
    error_message = "name must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "rule_groups" {
  description = "Prometheus rule files to load, one rule groups namespace each: namespace name => file content (a YAML document with `groups:`). Roots pass the repository's otel/prometheus/rules/*.yml."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.rule_groups) : can(regex("^[0-9A-Za-z][-.0-9A-Z_a-z]{0,63}$", k))])
    error_message = "rule group namespace names must match [0-9A-Za-z][-.0-9A-Z_a-z]* and be at most 64 characters."
  }

  validation {
    condition     = alltrue([for v in values(var.rule_groups) : can(length(yamldecode(v).groups) > 0)])
    error_message = "every rule file must be YAML with a non-empty `groups:` list."
  }
}

variable "create_alertmanager_definition" {
  description = "Load an Alertmanager definition into the workspace (routes alerts to SNS). Off only where the API is unavailable (local emulators)."
  type        = bool
  default     = true
}

variable "alertmanager_definition" {
  description = "Complete Amazon Managed Prometheus Alertmanager definition (YAML with `alertmanager_config:`). Null generates one that routes every alert to the alerts SNS topic."
  type        = string
  default     = null

  validation {
    condition     = var.alertmanager_definition == null || can(yamldecode(yamldecode(var.alertmanager_definition).alertmanager_config).route)
    error_message = "alertmanager_definition must be YAML whose alertmanager_config is an Alertmanager configuration with a route."
  }
}

variable "alert_sns_topic_arn" {
  description = "Existing SNS topic for alerts. Null creates one (encrypted, publishable by this workspace only)."
  type        = string
  default     = null
}

variable "alert_group_by" {
  description = "Labels the generated Alertmanager route groups alerts by (as otel/prometheus/alertmanager.yml)."
  type        = list(string)
  default     = ["alertname", "region", "slo"]
}

variable "enable_logging" {
  description = "Send the workspace's rule evaluation and Alertmanager errors to CloudWatch Logs."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the workspace log group."
  type        = number
  default     = 30
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the workspace, its log group and the alerts topic (its key policy must let aps.amazonaws.com use kms:GenerateDataKey* and kms:Decrypt, and CloudWatch Logs use it). Null uses AWS owned keys for the workspace and logs, and a key made for the alerts topic."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
