locals {
  group_id      = "${var.name}-redis"
  create_secret = var.auth_token_secret_arn == null
  secret_arn    = local.create_secret ? aws_secretsmanager_secret.auth[0].arn : var.auth_token_secret_arn
}

# ---------------------------------------------------------------- AUTH token
# The token lives in Secrets Manager; the gateway reads it from there at start
# (MCP_GATEWAY_REDIS_PASSWORD). ElastiCache takes the token as a plain argument,
# so it is also in the Terraform state: keep the state encrypted.

data "aws_secretsmanager_random_password" "auth" {
  count = local.create_secret ? 1 : 0

  password_length     = 64
  exclude_punctuation = true
  include_space       = false
}

resource "aws_secretsmanager_secret" "auth" {
  count = local.create_secret ? 1 : 0

  name_prefix = "${local.group_id}-auth-"
  description = "AUTH token of the ${local.group_id} ElastiCache replication group."
  kms_key_id  = var.kms_key_arn
  tags        = var.tags
}

resource "aws_secretsmanager_secret_version" "auth" {
  count = local.create_secret ? 1 : 0

  secret_id     = aws_secretsmanager_secret.auth[0].id
  secret_string = data.aws_secretsmanager_random_password.auth[0].random_password

  # The password data source draws a new value on every plan; the first one is
  # kept. Rotation puts a new value in the secret (see docs/runbook.md).
  lifecycle {
    ignore_changes = [secret_string]
  }
}

# Always read the token as Secrets Manager has it now (AWSCURRENT), so a rotated
# secret reaches the replication group on the next apply.
data "aws_secretsmanager_secret_version" "auth" {
  secret_id = local.create_secret ? aws_secretsmanager_secret_version.auth[0].secret_id : var.auth_token_secret_arn
}

# ------------------------------------------------------------------ network

resource "aws_elasticache_subnet_group" "this" {
  name        = local.group_id
  description = "Private subnets of ${local.group_id}."
  subnet_ids  = var.subnet_ids
  tags        = var.tags
}

resource "aws_security_group" "this" {
  name_prefix = "${local.group_id}-"
  description = "Redis ${local.group_id}: TLS clients on ${var.port} only."
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = local.group_id })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "from_security_groups" {
  for_each = var.allowed_security_group_ids

  security_group_id            = aws_security_group.this.id
  description                  = "Redis from ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
  referenced_security_group_id = each.value
  tags                         = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "from_cidrs" {
  for_each = toset(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "Redis from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = var.port
  to_port           = var.port
  cidr_ipv4         = each.value
  tags              = var.tags
}

# --------------------------------------------------------------- slow log

resource "aws_cloudwatch_log_group" "slow_log" {
  count = var.enable_slow_log ? 1 : 0

  name              = "/aws/elasticache/${local.group_id}/slow-log"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# -------------------------------------------------------- replication group

resource "aws_elasticache_replication_group" "this" {
  replication_group_id = local.group_id
  description          = "MCP gateway sessions, counters and rate limits (${var.name})."

  engine               = "redis"
  engine_version       = var.engine_version
  parameter_group_name = var.parameter_group_name
  node_type            = var.node_type
  port                 = var.port
  num_cache_clusters   = var.num_cache_clusters

  subnet_group_name  = aws_elasticache_subnet_group.this.name
  security_group_ids = [aws_security_group.this.id]

  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"

  auth_token                 = data.aws_secretsmanager_secret_version.auth.secret_string
  auth_token_update_strategy = var.auth_token_update_strategy

  snapshot_retention_limit   = var.snapshot_retention_limit
  maintenance_window         = var.maintenance_window
  apply_immediately          = var.apply_immediately
  auto_minor_version_upgrade = true
  notification_topic_arn     = var.notification_topic_arn

  dynamic "log_delivery_configuration" {
    for_each = var.enable_slow_log ? [1] : []
    content {
      destination      = aws_cloudwatch_log_group.slow_log[0].name
      destination_type = "cloudwatch-logs"
      log_format       = "json"
      log_type         = "slow-log"
    }
  }

  tags = var.tags
}
