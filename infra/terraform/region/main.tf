locals {
  name = "mcp-${var.name}"

  tags = merge({
    Project     = "mcp-gateway"
    Environment = var.environment
    Federation  = var.name
    ManagedBy   = "terraform"
  }, var.tags)

  # The repository's operations-as-code: the pinned Collector, its configuration
  # for a region, and the Prometheus rule files (unit-test files are not rules).
  otel_dir         = coalesce(var.otel_dir, "${path.module}/../../../otel")
  collector_image  = coalesce(var.collector_image, yamldecode(file("${local.otel_dir}/collector/distribution.yaml")).image)
  collector_config = file("${local.otel_dir}/collector/region.yaml")
  rules_dir        = "${local.otel_dir}/prometheus/rules"
  rule_files       = sort([for f in fileset(local.rules_dir, "*.yml") : f if !endswith(f, "_test.yml") && !endswith(f, ".test.yml")])
  rule_groups      = { for f in local.rule_files : trimsuffix(f, ".yml") => file("${local.rules_dir}/${f}") }

  redis_url        = var.enable_redis ? module.redis[0].url : var.redis_url
  redis_secret_arn = var.enable_redis ? module.redis[0].auth_token_secret_arn : var.redis_auth_secret_arn
  http_host        = var.dns == null ? module.gateway.alb_dns_name : var.dns.http_name
  tcp_host         = var.dns == null ? module.gateway.nlb_dns_name : var.dns.tcp_name

  # What otel/collector/region.yaml reads from its environment besides what the
  # gateway module sets (AWS_REGION, MCP_REGION, DEPLOYMENT_ENVIRONMENT,
  # AMP_REMOTE_WRITE_URL, FEDERATION_OTLP_ENDPOINT).
  collector_environment = merge(
    {
      JAEGER_OTLP_ENDPOINT = var.jaeger_otlp_endpoint
      LOGS_ENDPOINT        = var.logs_endpoint
    },
    var.logs_index == null ? {} : { LOGS_INDEX = var.logs_index },
    var.trace_slow_threshold_ms == null ? {} : { TRACE_SLOW_THRESHOLD_MS = tostring(var.trace_slow_threshold_ms) },
    var.trace_sample_percentage == null ? {} : { TRACE_SAMPLE_PERCENTAGE = tostring(var.trace_sample_percentage) },
  )
  collector_secrets = {
    FEDERATION_BEARER_TOKEN = var.federation_token_secret_arn
    LOGS_USERNAME           = "${var.logs_credentials_secret_arn}:username::"
    LOGS_PASSWORD           = "${var.logs_credentials_secret_arn}:password::"
  }
}

module "network" {
  source = "../modules/network"

  name                        = local.name
  create_vpc                  = var.create_vpc
  vpc_cidr                    = var.vpc_cidr
  az_count                    = var.az_count
  single_nat_gateway          = var.single_nat_gateway
  vpc_id                      = var.vpc_id
  public_subnet_ids           = var.public_subnet_ids
  private_subnet_ids          = var.private_subnet_ids
  existing_egress_cidr_blocks = var.existing_egress_cidr_blocks
}

module "prometheus" {
  source = "../modules/prometheus"

  name                           = local.name
  rule_groups                    = local.rule_groups
  create_alertmanager_definition = var.enable_alertmanager
  enable_logging                 = var.enable_prometheus_logging
  log_retention_days             = var.log_retention_days
}

module "redis" {
  source = "../modules/redis"
  count  = var.enable_redis ? 1 : 0

  name                       = local.name
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.private_subnet_ids
  allowed_security_group_ids = { gateway = module.gateway.tasks_security_group_id }
  node_type                  = var.redis_node_type
  num_cache_clusters         = var.redis_num_cache_clusters
  auth_token_secret_arn      = var.redis_auth_secret_arn
  apply_immediately          = var.redis_apply_immediately
  auth_token_update_strategy = var.redis_auth_token_update_strategy
  log_retention_days         = var.log_retention_days
}

module "gateway" {
  source = "../modules/gateway"

  name               = local.name
  region_label       = var.name
  environment        = var.environment
  vpc_id             = module.network.vpc_id
  public_subnet_ids  = module.network.public_subnet_ids
  private_subnet_ids = module.network.private_subnet_ids

  image                    = var.image
  certificate_arn          = var.certificate_arn
  tcp_tls_certificate_arn  = var.tcp_tls_certificate_arn
  http_ingress_cidr_blocks = var.http_ingress_cidr_blocks
  tcp_ingress_cidr_blocks  = var.tcp_ingress_cidr_blocks
  deletion_protection      = var.deletion_protection

  gateway_config        = var.gateway_config_file == null ? null : file(var.gateway_config_file)
  gateway_config_path   = var.gateway_config_path
  gateway_environment   = var.gateway_environment
  gateway_secrets       = var.gateway_secrets
  redis_url             = local.redis_url
  redis_auth_secret_arn = local.redis_secret_arn

  collector_image             = local.collector_image
  collector_config            = local.collector_config
  collector_environment       = local.collector_environment
  collector_secrets           = local.collector_secrets
  prometheus_workspace_arn    = module.prometheus.workspace_arn
  prometheus_remote_write_url = module.prometheus.remote_write_url
  federation_endpoint         = var.federation_endpoint

  cpu                          = var.cpu
  memory                       = var.memory
  cpu_architecture             = var.cpu_architecture
  desired_count                = var.desired_count
  enable_autoscaling           = var.enable_autoscaling
  min_capacity                 = var.min_capacity
  max_capacity                 = var.max_capacity
  cpu_target_percent           = var.cpu_target_percent
  requests_per_target          = var.requests_per_target
  fargate_spot_weight          = var.fargate_spot_weight
  container_insights           = var.container_insights
  deregistration_delay_seconds = var.deregistration_delay_seconds
  log_retention_days           = var.log_retention_days
}

module "grafana" {
  source = "../modules/grafana"
  count  = var.enable_grafana ? 1 : 0

  name = local.name
  prometheus_workspaces = {
    region = {
      arn      = module.prometheus.workspace_arn
      endpoint = module.prometheus.prometheus_endpoint
      region   = module.prometheus.region
    }
  }
  authentication_providers         = var.grafana_authentication_providers
  admin_group_ids                  = var.grafana_admin_group_ids
  viewer_group_ids                 = var.grafana_viewer_group_ids
  alerts_sns_topic_arns            = var.enable_alertmanager ? { (var.name) = module.prometheus.alerts_topic_arn } : {}
  alerts_kms_key_arns              = var.enable_alertmanager ? { (var.name) = module.prometheus.alerts_kms_key_arn } : {}
  service_account_token_generation = var.grafana_token_generation
}

resource "aws_route53_record" "http" {
  count = var.dns == null ? 0 : 1

  zone_id = var.dns.zone_id
  name    = var.dns.http_name
  type    = "A"

  alias {
    name                   = module.gateway.alb_dns_name
    zone_id                = module.gateway.alb_zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "tcp" {
  count = var.dns == null ? 0 : 1

  zone_id = var.dns.zone_id
  name    = var.dns.tcp_name
  type    = "A"

  alias {
    name                   = module.gateway.nlb_dns_name
    zone_id                = module.gateway.nlb_zone_id
    evaluate_target_health = true
  }
}
