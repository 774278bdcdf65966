variable "name" {
  description = "Workspace name and prefix of its IAM role (for example \"mcp-use1\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,50}$", var.name))
    error_message = "name must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "prometheus_workspaces" {
  description = "Amazon Managed Prometheus workspaces this Grafana views: key => { arn, endpoint (the workspace's prometheus_endpoint), region }. The IAM role may query these and nothing else; each becomes the Grafana data source mcp-prometheus-<key> (\"region\" and \"global\" match the dashboards' provisioning)."
  type = map(object({
    arn      = string
    endpoint = string
    region   = string
  }))

  validation {
    condition     = length(var.prometheus_workspaces) > 0
    error_message = "prometheus_workspaces needs at least one workspace."
  }

  validation {
    condition     = alltrue([for w in values(var.prometheus_workspaces) : can(regex("^arn:aws[a-z-]*:aps:[a-z0-9-]+:[0-9]{12}:workspace/", w.arn))])
    error_message = "each workspace arn must be an Amazon Managed Prometheus workspace ARN."
  }

  validation {
    condition     = alltrue([for w in values(var.prometheus_workspaces) : startswith(w.endpoint, "https://")])
    error_message = "each workspace endpoint must be an https:// URL."
  }
}

variable "default_datasource" {
  description = "Key in prometheus_workspaces of the default data source. Null takes the first key."
  type        = string
  default     = null
}

variable "grafana_version" {
  description = "Grafana version of the workspace."
  type        = string
  default     = "10.4"
}

variable "authentication_providers" {
  description = "How people sign in: AWS_SSO (IAM Identity Center) and/or SAML."
  type        = list(string)
  default     = ["AWS_SSO"]

  validation {
    condition     = length(var.authentication_providers) > 0 && alltrue([for p in var.authentication_providers : contains(["AWS_SSO", "SAML"], p)])
    error_message = "authentication_providers must list AWS_SSO and/or SAML."
  }
}

variable "admin_group_ids" {
  description = "IAM Identity Center group ids given the Grafana ADMIN role."
  type        = list(string)
  default     = []
}

variable "viewer_group_ids" {
  description = "IAM Identity Center group ids given the Grafana VIEWER role."
  type        = list(string)
  default     = []
}

variable "alerts_sns_topic_arns" {
  description = "SNS topics Grafana alerting may publish to, keyed by a static name (static keys keep the plan known before the topics exist); enables the SNS notification destination."
  type        = map(string)
  default     = {}
}

variable "alerts_kms_key_arns" {
  description = "KMS keys of those topics (keyed like alerts_sns_topic_arns); the role may encrypt with them."
  type        = map(string)
  default     = {}
}

variable "create_service_account_token" {
  description = "Create the dashboards publisher's service account and its token. The account is a Grafana ADMIN because it also creates the Prometheus data sources."
  type        = bool
  default     = true
}

variable "service_account_token_ttl_seconds" {
  description = "Lifetime of the publisher token (at most 30 days)."
  type        = number
  default     = 2592000

  validation {
    condition     = var.service_account_token_ttl_seconds >= 60 && var.service_account_token_ttl_seconds <= 2592000
    error_message = "service_account_token_ttl_seconds must be between 60 and 2592000 (30 days)."
  }
}

variable "service_account_token_generation" {
  description = "Bump to replace the publisher token (rotation)."
  type        = number
  default     = 1
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
