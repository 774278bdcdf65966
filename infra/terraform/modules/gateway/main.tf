data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  http_port            = 8080
  metrics_port         = 9090
  tcp_port             = 8445
  bridge_metrics_port  = 9092
  collector_otlp_grpc  = "http://127.0.0.1:4317"
  gateway_websocket    = "ws://127.0.0.1:${local.http_port}/ws"
  tcp_listener_is_tls  = var.tcp_tls_certificate_arn != null
  config_volume        = "gateway-config"
  config_dir           = "/etc/mcp-gateway/conf"
  config_file          = "${local.config_dir}/gateway.yaml"
  gateway_config_env   = var.gateway_config != null ? local.config_file : var.gateway_config_path
  requests_policy      = var.enable_autoscaling && var.requests_per_target != null
  image_pull_resources = length(var.image_pull_repository_arns) > 0 ? var.image_pull_repository_arns : ["arn:${local.partition}:ecr:*:${local.account_id}:repository/*"]

  resource_attributes = merge({
    "service.namespace"           = "mcp"
    "deployment.environment.name" = var.environment
    "cloud.provider"              = "aws"
    "cloud.platform"              = "aws_ecs"
    "cloud.region"                = local.region
    "mcp.region"                  = var.region_label
  }, var.resource_attributes)
  resource_attributes_env = join(",", [for k in sort(keys(local.resource_attributes)) : "${k}=${local.resource_attributes[k]}"])

  otel_environment = {
    OTEL_EXPORTER_OTLP_ENDPOINT = local.collector_otlp_grpc
    OTEL_EXPORTER_OTLP_PROTOCOL = "grpc"
    OTEL_RESOURCE_ATTRIBUTES    = local.resource_attributes_env
  }

  gateway_environment = merge(
    local.otel_environment,
    { OTEL_SERVICE_NAME = "mcp-gateway" },
    var.redis_url == null ? {} : { MCP_GATEWAY_REDIS_URL = var.redis_url },
    local.gateway_config_env == null ? {} : { MCP_GATEWAY_CONFIG = local.gateway_config_env },
    var.gateway_environment,
  )
  gateway_secrets = merge(
    var.redis_auth_secret_arn == null ? {} : { MCP_GATEWAY_REDIS_PASSWORD = var.redis_auth_secret_arn },
    var.gateway_secrets,
  )

  bridge_environment = merge(local.otel_environment, { OTEL_SERVICE_NAME = "mcp-gateway-tcp-bridge" })

  # The variables the Collector configuration (otel/collector/region.yaml) reads.
  # The sidecar shares the task's network namespace: it scrapes the gateway's and
  # the bridge's metrics endpoints on loopback (their `up` for MCPGatewayDown).
  collector_environment = merge(
    {
      OTEL_COLLECTOR_CONFIG  = var.collector_config
      AWS_REGION             = local.region
      MCP_REGION             = var.region_label
      DEPLOYMENT_ENVIRONMENT = var.environment
      AMP_REMOTE_WRITE_URL   = var.prometheus_remote_write_url
      GATEWAY_METRICS_TARGET = "127.0.0.1:${local.metrics_port}"
      BRIDGE_METRICS_TARGET  = "127.0.0.1:${local.bridge_metrics_port}"
    },
    var.federation_endpoint == null ? {} : { FEDERATION_OTLP_ENDPOINT = var.federation_endpoint },
    var.collector_environment,
  )

  containers = [
    merge({
      name      = "gateway"
      image     = var.image
      essential = true
      portMappings = [
        { name = "http", containerPort = local.http_port, protocol = "tcp", appProtocol = "http" },
        { name = "metrics", containerPort = local.metrics_port, protocol = "tcp" },
      ]
      environment = [for k in sort(keys(local.gateway_environment)) : { name = k, value = local.gateway_environment[k] }]
      secrets     = [for k in sort(keys(local.gateway_secrets)) : { name = k, valueFrom = local.gateway_secrets[k] }]
      # Liveness (/healthz), as the image's own HEALTHCHECK: a Redis outage makes the
      # task unready (/readyz, load balancers) but must not restart it; a backend
      # outage makes neither (docs/architecture.md, "Readiness").
      healthCheck = {
        command     = ["CMD", "python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:${local.http_port}/healthz', timeout=4)"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }
      dependsOn = concat(
        [{ containerName = "collector", condition = "START" }],
        var.gateway_config == null ? [] : [{ containerName = "gateway-config", condition = "SUCCESS" }],
      )
      mountPoints = var.gateway_config == null ? [] : [{ sourceVolume = local.config_volume, containerPath = local.config_dir, readOnly = true }]
      ulimits     = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]
      stopTimeout = 60
    }, var.gateway_command == null ? {} : { command = var.gateway_command }),
    {
      name       = "bridge"
      image      = coalesce(var.bridge_image, var.image)
      essential  = true
      entryPoint = ["mcp-gateway"]
      command    = ["bridge", "--listen", "0.0.0.0:${local.tcp_port}", "--gateway", local.gateway_websocket]
      portMappings = [
        { name = "mcpb", containerPort = local.tcp_port, protocol = "tcp" },
        { name = "bridge-metrics", containerPort = local.bridge_metrics_port, protocol = "tcp" },
      ]
      environment = [for k in sort(keys(local.bridge_environment)) : { name = k, value = local.bridge_environment[k] }]
      secrets     = []
      dependsOn   = [{ containerName = "gateway", condition = "HEALTHY" }]
      ulimits     = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]
      stopTimeout = 60
    },
    {
      name         = "collector"
      image        = var.collector_image
      essential    = true
      command      = ["--config=env:OTEL_COLLECTOR_CONFIG"]
      portMappings = []
      environment  = [for k in sort(keys(local.collector_environment)) : { name = k, value = local.collector_environment[k] }]
      secrets      = [for k in sort(keys(var.collector_secrets)) : { name = k, valueFrom = var.collector_secrets[k] }]
      stopTimeout  = 30
    },
  ]

  # Writes gateway_config to the task volume and exits; the gateway starts after it
  # succeeded. Runs as root only to write into the fresh volume.
  config_writer = var.gateway_config == null ? [] : [{
    name        = "gateway-config"
    image       = var.image
    essential   = false
    user        = "0"
    entryPoint  = ["python", "-c"]
    command     = ["import os; open('${local.config_file}', 'w').write(os.environ['MCP_GATEWAY_CONFIG_YAML'])"]
    environment = [{ name = "MCP_GATEWAY_CONFIG_YAML", value = var.gateway_config }]
    mountPoints = [{ sourceVolume = local.config_volume, containerPath = local.config_dir, readOnly = false }]
  }]
}

# ----------------------------------------------------------- security groups

resource "aws_security_group" "alb" {
  name_prefix = "${var.name}-alb-"
  description = "${var.name} ALB: HTTPS from clients, HTTP to the gateway containers."
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-alb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "nlb" {
  name_prefix = "${var.name}-nlb-"
  description = "${var.name} NLB: MCPB/TCP from clients to the bridge containers."
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-nlb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "tasks" {
  name_prefix = "${var.name}-tasks-"
  description = "${var.name} tasks: traffic from the load balancers only."
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-tasks" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = toset(var.http_ingress_cidr_blocks)

  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each = var.http_redirect ? toset(var.http_ingress_cidr_blocks) : toset([])

  security_group_id = aws_security_group.alb.id
  description       = "HTTP (redirected to HTTPS) from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Gateway HTTP"
  ip_protocol                  = "tcp"
  from_port                    = local.http_port
  to_port                      = local.http_port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_vpc_security_group_ingress_rule" "nlb_tcp" {
  for_each = toset(var.tcp_ingress_cidr_blocks)

  security_group_id = aws_security_group.nlb.id
  description       = "MCPB from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = local.tcp_port
  to_port           = local.tcp_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_tasks" {
  for_each = toset([tostring(local.tcp_port), tostring(local.http_port)])

  security_group_id            = aws_security_group.nlb.id
  description                  = each.value == tostring(local.tcp_port) ? "Bridge MCPB" : "Gateway readiness checks"
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_http_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Gateway HTTP from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = local.http_port
  to_port                      = local.http_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_nlb" {
  for_each = toset([tostring(local.tcp_port), tostring(local.http_port)])

  security_group_id            = aws_security_group.tasks.id
  description                  = each.value == tostring(local.tcp_port) ? "Bridge MCPB from the NLB" : "Readiness checks from the NLB"
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
  referenced_security_group_id = aws_security_group.nlb.id
}

# Tasks reach Redis, Amazon Managed Prometheus, ECR, Secrets Manager, the backends
# and the federation endpoint.
resource "aws_vpc_security_group_egress_rule" "tasks_all" {
  security_group_id = aws_security_group.tasks.id
  description       = "Everything outbound"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# ---------------------------------------------------- ALB: HTTP and WebSocket

resource "aws_lb" "http" {
  name               = "${var.name}-http"
  load_balancer_type = "application"
  internal           = var.internal
  subnets            = var.public_subnet_ids
  security_groups    = [aws_security_group.alb.id]

  idle_timeout               = var.alb_idle_timeout_seconds
  drop_invalid_header_fields = true
  enable_http2               = true
  enable_deletion_protection = var.deletion_protection

  dynamic "access_logs" {
    for_each = var.access_logs_bucket == null ? [] : [var.access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = var.name
      enabled = true
    }
  }

  tags = var.tags
}

resource "aws_lb_target_group" "http" {
  name                 = "${var.name}-http"
  port                 = local.http_port
  protocol             = "HTTP"
  protocol_version     = "HTTP1"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = var.deregistration_delay_seconds

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = var.health_check_path
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.http.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.http.arn
  }

  tags = var.tags
}

resource "aws_lb_listener" "http_redirect" {
  count = var.http_redirect ? 1 : 0

  load_balancer_arn = aws_lb.http.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }

  tags = var.tags
}

# ------------------------------------------------------------ NLB: MCPB/TCP

resource "aws_lb" "tcp" {
  name                             = "${var.name}-tcp"
  load_balancer_type               = "network"
  internal                         = var.internal
  subnets                          = var.public_subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection
  tags                             = var.tags
}

resource "aws_lb_target_group" "tcp" {
  name                   = "${var.name}-tcp"
  port                   = local.tcp_port
  protocol               = "TCP"
  target_type            = "ip"
  vpc_id                 = var.vpc_id
  deregistration_delay   = var.deregistration_delay_seconds
  connection_termination = true

  # The bridge is an essential container that needs a healthy gateway, so the
  # task's readiness is the gateway's /readyz.
  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = tostring(local.http_port)
    path                = var.health_check_path
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = var.tags
}

resource "aws_lb_listener" "tcp" {
  load_balancer_arn        = aws_lb.tcp.arn
  port                     = local.tcp_port
  protocol                 = local.tcp_listener_is_tls ? "TLS" : "TCP"
  certificate_arn          = var.tcp_tls_certificate_arn
  ssl_policy               = local.tcp_listener_is_tls ? var.ssl_policy : null
  tcp_idle_timeout_seconds = local.tcp_listener_is_tls ? null : var.tcp_idle_timeout_seconds

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.tcp.arn
  }

  tags = var.tags
}

# ------------------------------------------------------------- ECS on Fargate
# Log group, execution and task roles, cluster (with the FARGATE and FARGATE_SPOT capacity
# providers), task definition, service and CPU target tracking: ../ecs-service.

module "service" {
  source = "../ecs-service"

  name = var.name
  tags = var.tags

  containers         = concat(local.containers, local.config_writer)
  volumes            = var.gateway_config == null ? [] : [local.config_volume]
  cpu                = var.cpu
  memory             = var.memory
  cpu_architecture   = var.cpu_architecture
  log_retention_days = var.log_retention_days
  kms_key_arn        = var.kms_key_arn

  execution_policy_name = "pull-log-secrets"
  ecr_repository_arns   = local.image_pull_resources
  # The Collector remote-writes to this region's workspace.
  task_policy_name = "remote-write"
  task_policy_statements = [{
    Sid      = "RemoteWriteToWorkspace"
    Effect   = "Allow"
    Action   = ["aps:RemoteWrite"]
    Resource = var.prometheus_workspace_arn
  }]

  subnet_ids         = var.private_subnet_ids
  security_group_ids = [aws_security_group.tasks.id]
  assign_public_ip   = var.assign_public_ip
  load_balancers = [
    { target_group_arn = aws_lb_target_group.http.arn, container_name = "gateway", container_port = local.http_port },
    { target_group_arn = aws_lb_target_group.tcp.arn, container_name = "bridge", container_port = local.tcp_port },
  ]
  service_depends_on                = [aws_lb_listener.https, aws_lb_listener.tcp]
  health_check_grace_period_seconds = 60
  desired_count                     = var.desired_count
  use_capacity_providers            = true
  fargate_spot_weight               = var.fargate_spot_weight
  container_insights                = var.container_insights
  enable_execute_command            = var.enable_execute_command
  enable_ecs_managed_tags           = true
  wait_for_steady_state             = var.wait_for_steady_state

  enable_autoscaling = var.enable_autoscaling
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity
  cpu_target_percent = var.cpu_target_percent
}

# --------------------------------------------------------------- autoscaling
# CPU target tracking comes with the module; this adds ALB requests per target.

resource "aws_appautoscaling_policy" "requests" {
  count = local.requests_policy ? 1 : 0

  name               = "${var.name}-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = module.service.autoscaling_target[0].service_namespace
  scalable_dimension = module.service.autoscaling_target[0].scalable_dimension
  resource_id        = module.service.autoscaling_target[0].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.http.arn_suffix}/${aws_lb_target_group.http.arn_suffix}"
    }
  }
}
