data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  default_datasource = coalesce(var.default_datasource, keys(var.prometheus_workspaces)[0])

  # Grafana HTTP API payloads (POST /api/datasources) for `mcp-gateway dashboards
  # publish --datasources`: the Prometheus data source of each workspace, signed
  # with the workspace's IAM role (SigV4 auth type "ec2_iam_role" in Grafana terms).
  # uids and names follow dashboards/provisioning/datasources/mcp-prometheus.yaml
  # (mcp-prometheus-region, mcp-prometheus-global).
  datasources = [
    for key, ws in var.prometheus_workspaces : {
      uid       = "mcp-prometheus-${key}"
      name      = "MCP Prometheus (${key})"
      type      = "prometheus"
      access    = "proxy"
      url       = ws.endpoint
      isDefault = key == local.default_datasource
      jsonData = {
        httpMethod    = "POST"
        timeInterval  = "15s"
        sigV4Auth     = true
        sigV4AuthType = "ec2_iam_role"
        sigV4Region   = ws.region
      }
    }
  ]
}

# ---------------------------------------------------------------- IAM role

resource "aws_iam_role" "this" {
  name = "${var.name}-grafana"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "grafana.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
        StringLike   = { "aws:SourceArn" = "arn:${local.partition}:grafana:${data.aws_region.current.name}:${local.account_id}:/workspaces/*" }
      }
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "prometheus_query" {
  name = "query-prometheus-workspaces"
  role = aws_iam_role.this.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListWorkspaces"
        Effect   = "Allow"
        Action   = ["aps:ListWorkspaces"]
        Resource = "*"
      },
      {
        Sid    = "QueryTheseWorkspaces"
        Effect = "Allow"
        Action = [
          "aps:DescribeWorkspace",
          "aps:GetLabels",
          "aps:GetMetricMetadata",
          "aps:GetSeries",
          "aps:QueryMetrics",
        ]
        Resource = sort([for w in values(var.prometheus_workspaces) : w.arn])
      },
    ]
  })
}

resource "aws_iam_role_policy" "sns" {
  count = length(var.alerts_sns_topic_arns) > 0 ? 1 : 0

  name = "publish-alerts"
  role = aws_iam_role.this.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid      = "PublishAlerts"
        Effect   = "Allow"
        Action   = ["sns:Publish"]
        Resource = sort(values(var.alerts_sns_topic_arns))
      }],
      length(var.alerts_kms_key_arns) == 0 ? [] : [{
        Sid      = "EncryptAlerts"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource = sort(values(var.alerts_kms_key_arns))
      }],
    )
  })
}

# --------------------------------------------------------------- workspace

resource "aws_grafana_workspace" "this" {
  name                      = var.name
  description               = "MCP gateway dashboards (${var.name})."
  account_access_type       = "CURRENT_ACCOUNT"
  authentication_providers  = var.authentication_providers
  permission_type           = "CUSTOMER_MANAGED"
  role_arn                  = aws_iam_role.this.arn
  data_sources              = ["PROMETHEUS"]
  notification_destinations = length(var.alerts_sns_topic_arns) > 0 ? ["SNS"] : null
  grafana_version           = var.grafana_version

  configuration = jsonencode({
    plugins         = { pluginAdminEnabled = false }
    unifiedAlerting = { enabled = true }
  })

  tags = var.tags
}

resource "aws_grafana_role_association" "admins" {
  count = length(var.admin_group_ids) > 0 ? 1 : 0

  role         = "ADMIN"
  group_ids    = var.admin_group_ids
  workspace_id = aws_grafana_workspace.this.id
}

resource "aws_grafana_role_association" "viewers" {
  count = length(var.viewer_group_ids) > 0 ? 1 : 0

  role         = "VIEWER"
  group_ids    = var.viewer_group_ids
  workspace_id = aws_grafana_workspace.this.id
}

# ---------------------------------------- dashboards publisher credentials
# The token is what `mcp-gateway dashboards publish` sends as a Bearer token.
# It is in the state (sensitive); it expires after the TTL: bump
# service_account_token_generation to replace it.

resource "aws_grafana_workspace_service_account" "publisher" {
  count = var.create_service_account_token ? 1 : 0

  name         = "dashboards-publisher"
  grafana_role = "ADMIN"
  workspace_id = aws_grafana_workspace.this.id
}

resource "aws_grafana_workspace_service_account_token" "publisher" {
  count = var.create_service_account_token ? 1 : 0

  name               = "dashboards-publisher-${var.service_account_token_generation}"
  service_account_id = aws_grafana_workspace_service_account.publisher[0].service_account_id
  seconds_to_live    = var.service_account_token_ttl_seconds
  workspace_id       = aws_grafana_workspace.this.id
}
