locals {
  name = "mcp-${var.name}"

  tags = merge({
    Project     = "mcp-gateway"
    Environment = var.environment
    Federation  = var.name
    ManagedBy   = "terraform"
  }, var.tags)

  otel_dir         = coalesce(var.otel_dir, "${path.module}/../../../otel")
  collector_image  = coalesce(var.collector_image, yamldecode(file("${local.otel_dir}/collector/distribution.yaml")).image)
  collector_config = file("${local.otel_dir}/${var.collector_config_file}")
  rules_dir        = "${local.otel_dir}/prometheus/rules"
  rule_files       = var.load_rules ? sort([for f in fileset(local.rules_dir, "*.yml") : f if !endswith(f, "_test.yml") && !endswith(f, ".test.yml")]) : []
  rule_groups      = { for f in local.rule_files : trimsuffix(f, ".yml") => file("${local.rules_dir}/${f}") }

  federation_host = var.dns == null ? module.collector.nlb_dns_name : var.dns.otlp_name

  create_token     = var.federation_token_secret_arn == null
  token_secret_arn = local.create_token ? aws_secretsmanager_secret.federation[0].arn : var.federation_token_secret_arn
  replica_regions  = local.create_token ? var.federation_token_replica_regions : []

  # What otel/collector/federation.yaml reads from its environment besides what the
  # collector module sets (AWS_REGION, DEPLOYMENT_ENVIRONMENT, AMP_GLOBAL_REMOTE_WRITE_URL).
  collector_environment = merge(
    {
      CENTRAL_JAEGER_OTLP_ENDPOINT = var.central_jaeger_otlp_endpoint
      CENTRAL_LOGS_ENDPOINT        = var.central_logs_endpoint
    },
    var.central_logs_index == null ? {} : { CENTRAL_LOGS_INDEX = var.central_logs_index },
  )
  collector_secrets = {
    FEDERATION_BEARER_TOKEN = local.token_secret_arn
    CENTRAL_LOGS_USERNAME   = "${var.central_logs_credentials_secret_arn}:username::"
    CENTRAL_LOGS_PASSWORD   = "${var.central_logs_credentials_secret_arn}:password::"
  }
}

# ------------------------------------------------------------ federation token
# Regions send it (FEDERATION_BEARER_TOKEN in region.yaml), the federation
# Collector checks it. Replicas put a copy in every federated region.

data "aws_secretsmanager_random_password" "federation" {
  count = local.create_token ? 1 : 0

  password_length     = 48
  exclude_punctuation = true
  include_space       = false
}

resource "aws_secretsmanager_secret" "federation" {
  count = local.create_token ? 1 : 0

  name_prefix = "${local.name}-federation-token-"
  description = "Bearer token regional Collectors present to the federation Collector."

  dynamic "replica" {
    for_each = toset(var.federation_token_replica_regions)
    content {
      region = replica.value
    }
  }
}

resource "aws_secretsmanager_secret_version" "federation" {
  count = local.create_token ? 1 : 0

  secret_id     = aws_secretsmanager_secret.federation[0].id
  secret_string = data.aws_secretsmanager_random_password.federation[0].random_password

  # A new random value is drawn on every plan; keep the first (rotation: docs/runbook.md).
  lifecycle {
    ignore_changes = [secret_string]
  }
}

module "network" {
  source = "../modules/network"

  name               = local.name
  create_vpc         = var.create_vpc
  vpc_cidr           = var.vpc_cidr
  single_nat_gateway = var.single_nat_gateway
  vpc_id             = var.vpc_id
  public_subnet_ids  = var.public_subnet_ids
  private_subnet_ids = var.private_subnet_ids
}

# The global workspace: every region's series, forwarded by the central Collector.
module "prometheus" {
  source = "../modules/prometheus"

  name                           = local.name
  rule_groups                    = local.rule_groups
  create_alertmanager_definition = var.enable_alertmanager
  enable_logging                 = var.enable_prometheus_logging
  log_retention_days             = var.log_retention_days
}

# The federation Collector the regions' sidecars forward to (OTLP/gRPC over TLS).
module "collector" {
  source = "../modules/collector"

  name                        = "${local.name}-otel"
  environment                 = var.environment
  vpc_id                      = module.network.vpc_id
  public_subnet_ids           = module.network.public_subnet_ids
  private_subnet_ids          = module.network.private_subnet_ids
  allowed_cidr_blocks         = var.allowed_cidr_blocks
  certificate_arn             = var.certificate_arn
  image                       = local.collector_image
  config                      = local.collector_config
  environment_variables       = local.collector_environment
  secrets                     = local.collector_secrets
  prometheus_workspace_arn    = module.prometheus.workspace_arn
  prometheus_remote_write_url = module.prometheus.remote_write_url
  cpu                         = var.collector_cpu
  memory                      = var.collector_memory
  desired_count               = var.collector_desired_count
  enable_autoscaling          = var.collector_enable_autoscaling
  min_capacity                = var.collector_min_capacity
  max_capacity                = var.collector_max_capacity
  deletion_protection         = var.deletion_protection
  log_retention_days          = var.log_retention_days
}

# One Grafana that views every region: the global workspace (default data source)
# and each region's own workspace.
module "grafana" {
  source = "../modules/grafana"
  count  = var.enable_grafana ? 1 : 0

  name = local.name
  prometheus_workspaces = merge(var.region_workspaces, {
    global = {
      arn      = module.prometheus.workspace_arn
      endpoint = module.prometheus.prometheus_endpoint
      region   = module.prometheus.region
    }
  })
  default_datasource               = "global"
  authentication_providers         = var.grafana_authentication_providers
  admin_group_ids                  = var.grafana_admin_group_ids
  viewer_group_ids                 = var.grafana_viewer_group_ids
  alerts_sns_topic_arns            = var.enable_alertmanager ? { (var.name) = module.prometheus.alerts_topic_arn } : {}
  alerts_kms_key_arns              = var.enable_alertmanager ? { (var.name) = module.prometheus.alerts_kms_key_arn } : {}
  service_account_token_generation = var.grafana_token_generation
}

resource "aws_route53_record" "otlp" {
  count = var.dns == null ? 0 : 1

  zone_id = var.dns.zone_id
  name    = var.dns.otlp_name
  type    = "A"

  alias {
    name                   = module.collector.nlb_dns_name
    zone_id                = module.collector.nlb_zone_id
    evaluate_target_health = true
  }
}
