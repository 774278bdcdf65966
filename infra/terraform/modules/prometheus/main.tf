data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id   = data.aws_caller_identity.current.account_id
  create_topic = var.create_alertmanager_definition && var.alertmanager_definition == null && var.alert_sns_topic_arn == null
  topic_arn    = local.create_topic ? aws_sns_topic.alerts[0].arn : var.alert_sns_topic_arn
  # An encrypted topic needs a key Amazon Managed Prometheus may use: the AWS managed
  # aws/sns key cannot grant that, so without kms_key_arn the module makes one.
  create_key    = local.create_topic && var.kms_key_arn == null
  topic_key_arn = local.create_key ? aws_kms_key.alerts[0].arn : var.kms_key_arn

  # Amazon Managed Prometheus takes an Alertmanager configuration wrapped in
  # `alertmanager_config: |`; its only receiver type is SNS.
  generated_alertmanager = yamlencode({
    alertmanager_config = yamlencode({
      route = {
        receiver        = "sns"
        group_by        = var.alert_group_by
        group_wait      = "30s"
        group_interval  = "5m"
        repeat_interval = "4h"
      }
      receivers = [{
        name = "sns"
        sns_configs = [{
          topic_arn = local.topic_arn
          sigv4     = { region = data.aws_region.current.name }
          subject   = "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}"
          attributes = {
            severity  = "{{ .CommonLabels.severity }}"
            workspace = var.name
          }
        }]
      }]
    })
  })
}

resource "aws_cloudwatch_log_group" "this" {
  count = var.enable_logging ? 1 : 0

  name              = "/aws/prometheus/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_prometheus_workspace" "this" {
  alias       = var.name
  kms_key_arn = var.kms_key_arn

  dynamic "logging_configuration" {
    for_each = var.enable_logging ? [1] : []
    content {
      log_group_arn = "${aws_cloudwatch_log_group.this[0].arn}:*"
    }
  }

  tags = var.tags
}

# One namespace per rule file, named after the file.
resource "aws_prometheus_rule_group_namespace" "this" {
  for_each = var.rule_groups

  name         = each.key
  workspace_id = aws_prometheus_workspace.this.id
  data         = each.value
  tags         = var.tags
}

# ------------------------------------------------------------------ alerting

resource "aws_kms_key" "alerts" {
  count = local.create_key ? 1 : 0

  description             = "Encrypts the ${var.name} alerts topic; Amazon Managed Prometheus publishes with it."
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersTheKey"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "PrometheusPublishesEncrypted"
        Effect    = "Allow"
        Principal = { Service = "aps.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
  })
  tags = var.tags
}

resource "aws_kms_alias" "alerts" {
  count = local.create_key ? 1 : 0

  name          = "alias/${var.name}-alerts"
  target_key_id = aws_kms_key.alerts[0].key_id
}

resource "aws_sns_topic" "alerts" {
  count = local.create_topic ? 1 : 0

  name              = "${var.name}-alerts"
  kms_master_key_id = local.topic_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_policy" "alerts" {
  count = local.create_topic ? 1 : 0

  arn = aws_sns_topic.alerts[0].arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AllowThisWorkspaceToPublish"
      Effect    = "Allow"
      Principal = { Service = "aps.amazonaws.com" }
      Action    = ["sns:Publish", "sns:GetTopicAttributes"]
      Resource  = aws_sns_topic.alerts[0].arn
      Condition = {
        ArnEquals    = { "aws:SourceArn" = aws_prometheus_workspace.this.arn }
        StringEquals = { "AWS:SourceAccount" = local.account_id }
      }
    }]
  })
}

resource "aws_prometheus_alert_manager_definition" "this" {
  count = var.create_alertmanager_definition ? 1 : 0

  workspace_id = aws_prometheus_workspace.this.id
  definition   = coalesce(var.alertmanager_definition, local.generated_alertmanager)
}
