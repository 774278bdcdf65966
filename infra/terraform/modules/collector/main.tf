data "aws_region" "current" {}

locals {
  region = data.aws_region.current.name

  environment = merge({
    OTEL_COLLECTOR_CONFIG           = var.config
    AWS_REGION                      = local.region
    DEPLOYMENT_ENVIRONMENT          = var.environment
    (var.remote_write_url_variable) = var.prometheus_remote_write_url
  }, var.environment_variables)

  containers = [{
    name      = "collector"
    image     = var.image
    essential = true
    command   = ["--config=env:OTEL_COLLECTOR_CONFIG"]
    portMappings = [
      { name = "otlp-grpc", containerPort = var.otlp_grpc_port, protocol = "tcp" },
      { name = "health", containerPort = var.health_check_port, protocol = "tcp" },
    ]
    environment = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
    secrets     = [for k in sort(keys(var.secrets)) : { name = k, valueFrom = var.secrets[k] }]
    stopTimeout = 30
  }]
}

# ----------------------------------------------------------- security groups

resource "aws_security_group" "nlb" {
  name_prefix = "${var.name}-nlb-"
  description = "${var.name} NLB: OTLP/gRPC over TLS from the federated regions."
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-nlb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "tasks" {
  name_prefix = "${var.name}-tasks-"
  description = "${var.name} tasks: OTLP and health checks from the NLB."
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-tasks" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "nlb_otlp" {
  for_each = toset(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.nlb.id
  description       = "OTLP/gRPC over TLS from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = var.otlp_grpc_port
  to_port           = var.otlp_grpc_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_tasks" {
  for_each = toset([tostring(var.otlp_grpc_port), tostring(var.health_check_port)])

  security_group_id            = aws_security_group.nlb.id
  description                  = "Collector port ${each.value}"
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_nlb" {
  for_each = toset([tostring(var.otlp_grpc_port), tostring(var.health_check_port)])

  security_group_id            = aws_security_group.tasks.id
  description                  = "Collector port ${each.value} from the NLB"
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
  referenced_security_group_id = aws_security_group.nlb.id
}

resource "aws_vpc_security_group_egress_rule" "tasks_all" {
  security_group_id = aws_security_group.tasks.id
  description       = "Amazon Managed Prometheus, Jaeger, the log store, ECR, Secrets Manager"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# ------------------------------------------------------------- load balancer
# OTLP/gRPC is HTTP/2: the NLB terminates TLS (advertising h2 by ALPN, which gRPC
# clients require) and passes the stream through to the Collector's 4317.

resource "aws_lb" "this" {
  name                             = "${var.name}-otlp"
  load_balancer_type               = "network"
  internal                         = var.internal
  subnets                          = var.public_subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection
  tags                             = var.tags
}

resource "aws_lb_target_group" "otlp" {
  name                   = "${var.name}-otlp"
  port                   = var.otlp_grpc_port
  protocol               = "TCP"
  target_type            = "ip"
  vpc_id                 = var.vpc_id
  deregistration_delay   = 30
  connection_termination = true

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = tostring(var.health_check_port)
    path                = var.health_check_path
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  tags = var.tags
}

resource "aws_lb_listener" "otlp" {
  load_balancer_arn = aws_lb.this.arn
  port              = var.otlp_grpc_port
  protocol          = "TLS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn
  alpn_policy       = "HTTP2Preferred"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.otlp.arn
  }

  tags = var.tags
}

# -------------------------------------------------------------------- ECS
# Log group, execution and task roles, cluster, task definition, service and CPU target
# tracking: ../ecs-service.

module "service" {
  source = "../ecs-service"

  name = var.name
  tags = var.tags

  containers         = local.containers
  cpu                = var.cpu
  memory             = var.memory
  log_retention_days = var.log_retention_days
  kms_key_arn        = var.kms_key_arn

  execution_policy_name = "log-secrets"
  task_policy_name      = "remote-write"
  task_policy_statements = [{
    Sid      = "RemoteWriteToWorkspace"
    Effect   = "Allow"
    Action   = ["aps:RemoteWrite"]
    Resource = var.prometheus_workspace_arn
  }]

  subnet_ids         = var.private_subnet_ids
  security_group_ids = [aws_security_group.tasks.id]
  load_balancers = [
    { target_group_arn = aws_lb_target_group.otlp.arn, container_name = "collector", container_port = var.otlp_grpc_port },
  ]
  service_depends_on                = [aws_lb_listener.otlp]
  health_check_grace_period_seconds = 30
  desired_count                     = var.desired_count

  enable_autoscaling = var.enable_autoscaling
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity
  cpu_target_percent = var.cpu_target_percent
}
