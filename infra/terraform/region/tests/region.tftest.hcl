# terraform test for the region root, with the shared mocked AWS provider. The
# Collector image, its configuration and the rule files are the repository's otel/.

mock_provider "aws" {
  source = "../tests/mocks/aws"
}

variables {
  name                        = "use1"
  region                      = "us-east-1"
  image                       = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp-gateway:1.0.0"
  certificate_arn             = "arn:aws:acm:us-east-1:123456789012:certificate/region"
  gateway_config_file         = "gateway.example.yaml"
  federation_endpoint         = "otel.global.example.com:4317"
  federation_token_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp-global-federation-token-AbCdEf"
  jaeger_otlp_endpoint        = "jaeger.use1.example.com:4317"
  logs_endpoint               = "https://logs.use1.example.com"
  logs_credentials_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp-use1-logs-QwErTy"

  # Every variable terraform.tfvars.example sets is pinned here, defaults included: `terraform
  # test` also reads a terraform.tfvars in the root (the README's first step copies the example
  # there), and the assertions below are written against these values, not an operator's.
  dns                      = null
  grafana_admin_group_ids  = []
  grafana_viewer_group_ids = []
}

run "one_region_from_variables" {
  command = apply

  assert {
    condition     = output.mcp_url == "https://mock-0123456789.us-east-1.elb.amazonaws.com/mcp" && output.websocket_url == "wss://mock-0123456789.us-east-1.elb.amazonaws.com/ws"
    error_message = "HTTP and WebSocket endpoints are on the ALB"
  }

  assert {
    condition     = output.tcp_endpoint == "mock-0123456789.us-east-1.elb.amazonaws.com:8445"
    error_message = "the TCP endpoint is the NLB on 8445"
  }

  assert {
    condition     = output.grafana_url == "https://g-mock000000.grafana-workspace.us-east-1.amazonaws.com"
    error_message = "the region outputs its Grafana URL"
  }

  assert {
    condition     = nonsensitive(output.grafana_token) == "glsa_mockServiceAccountToken_0000"
    error_message = "the publisher token is an output"
  }

  assert {
    condition     = [for d in output.grafana_datasources : [d.uid, d.url, d.jsonData.sigV4Region]] == [["mcp-prometheus-region", "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-mock0000-0000-0000-0000-000000000000/", "us-east-1"]]
    error_message = "the region's Grafana reads the region's workspace, as the dashboards' mcp-prometheus-region data source"
  }
}

run "rule_files_are_loaded" {
  command = apply

  assert {
    condition = output.prometheus_rule_namespaces == sort([
      for f in fileset("${local.otel_dir}/prometheus/rules", "*.yml") : trimsuffix(f, ".yml") if !endswith(f, "_test.yml") && !endswith(f, ".test.yml")
    ])
    error_message = "every rule file in otel/prometheus/rules (and no unit-test file) becomes a rule groups namespace"
  }

  assert {
    condition     = length(output.prometheus_rule_namespaces) > 0
    error_message = "at least one rule file is loaded"
  }

  assert {
    condition     = alltrue([for k, v in local.rule_groups : yamldecode(v) == yamldecode(file("${local.otel_dir}/prometheus/rules/${k}.yml"))])
    error_message = "the namespaces hold the files' contents"
  }
}

run "collector_sidecar_runs_the_pinned_collector_with_the_region_config" {
  command = apply

  assert {
    condition     = one([for c in jsondecode(module.gateway.container_definitions) : c if c.name == "collector"]).image == yamldecode(file("${local.otel_dir}/collector/distribution.yaml")).image
    error_message = "the sidecar runs the Collector pinned in otel/collector/distribution.yaml"
  }

  assert {
    condition = yamldecode({
      for e in one([for c in jsondecode(module.gateway.container_definitions) : c if c.name == "collector"]).environment : e.name => e.value
    }["OTEL_COLLECTOR_CONFIG"]) == yamldecode(file("${local.otel_dir}/collector/region.yaml"))
    error_message = "the sidecar runs otel/collector/region.yaml"
  }

  assert {
    condition = {
      for e in one([for c in jsondecode(module.gateway.container_definitions) : c if c.name == "collector"]).environment : e.name => e.value if e.name != "OTEL_COLLECTOR_CONFIG"
      } == {
      AMP_REMOTE_WRITE_URL     = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-mock0000-0000-0000-0000-000000000000/api/v1/remote_write"
      AWS_REGION               = "us-east-1"
      BRIDGE_METRICS_TARGET    = "127.0.0.1:9092"
      DEPLOYMENT_ENVIRONMENT   = "production"
      FEDERATION_OTLP_ENDPOINT = "otel.global.example.com:4317"
      GATEWAY_METRICS_TARGET   = "127.0.0.1:9090"
      JAEGER_OTLP_ENDPOINT     = "jaeger.use1.example.com:4317"
      LOGS_ENDPOINT            = "https://logs.use1.example.com"
      MCP_REGION               = "use1"
    }
    error_message = "the sidecar writes to this region's workspace, sends traces and logs to the region's stores, forwards to the federation and scrapes its own task's gateway and bridge"
  }

  assert {
    condition = one([for c in jsondecode(module.gateway.container_definitions) : c if c.name == "collector"]).secrets == [
      { name = "FEDERATION_BEARER_TOKEN", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp-global-federation-token-AbCdEf" },
      { name = "LOGS_PASSWORD", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp-use1-logs-QwErTy:password::" },
      { name = "LOGS_USERNAME", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp-use1-logs-QwErTy:username::" },
    ]
    error_message = "the federation token and the log store credentials come from Secrets Manager"
  }

  assert {
    condition = alltrue([
      for ref in regexall("\\$\\{env:([A-Z_]+)\\}", file("${local.otel_dir}/collector/region.yaml")) :
      contains(concat(
        [for e in one([for c in jsondecode(module.gateway.container_definitions) : c if c.name == "collector"]).environment : e.name],
        [for e in one([for c in jsondecode(module.gateway.container_definitions) : c if c.name == "collector"]).secrets : e.name],
      ), ref[0])
    ])
    error_message = "every $${env:NAME} without a default in region.yaml must be set on the sidecar"
  }
}

run "gateway_configuration_is_deployed" {
  command = apply

  assert {
    condition     = yamldecode(one([for c in jsondecode(module.gateway.container_definitions) : c if c.name == "gateway-config"]).environment[0].value) == yamldecode(file("gateway.example.yaml"))
    error_message = "gateway_config_file reaches the task"
  }
}

run "gateway_uses_tls_redis_with_the_secret_token" {
  command = apply

  assert {
    condition     = { for e in one([for c in jsondecode(module.gateway.container_definitions) : c if c.name == "gateway"]).environment : e.name => e.value }["MCP_GATEWAY_REDIS_URL"] == "rediss://master.mock.abcdef.use1.cache.amazonaws.com:6379"
    error_message = "the gateway gets the replication group's rediss:// URL"
  }

  assert {
    condition     = one([for c in jsondecode(module.gateway.container_definitions) : c if c.name == "gateway"]).secrets == [{ name = "MCP_GATEWAY_REDIS_PASSWORD", valueFrom = module.redis[0].auth_token_secret_arn }]
    error_message = "the AUTH token reaches the gateway from Secrets Manager"
  }

  assert {
    condition     = output.redis_auth_secret_arn == module.redis[0].auth_token_secret_arn
    error_message = "the secret to rotate is an output"
  }
}

run "emulator_flags_leave_out_redis_grafana_and_alertmanager" {
  command = apply

  variables {
    enable_redis        = false
    enable_grafana      = false
    enable_alertmanager = false
  }

  assert {
    condition     = length(module.redis) == 0 && length(module.grafana) == 0 && output.grafana_url == null
    error_message = "the flags leave the unsupported services out"
  }

  assert {
    condition     = one([for c in jsondecode(module.gateway.container_definitions) : c if c.name == "gateway"]).secrets == []
    error_message = "without Redis there is no Redis secret"
  }

  assert {
    condition     = output.alerts_topic_arn == null
    error_message = "without Alertmanager there is no alerts topic"
  }
}

run "dns_names_replace_load_balancer_names" {
  command = apply

  variables {
    dns = {
      zone_id   = "Z0000000000MOCK"
      http_name = "mcp.use1.example.com"
      tcp_name  = "mcpb.use1.example.com"
    }
  }

  assert {
    condition     = output.mcp_url == "https://mcp.use1.example.com/mcp" && output.tcp_endpoint == "mcpb.use1.example.com:8445"
    error_message = "with DNS the endpoints use the names"
  }

  assert {
    condition     = aws_route53_record.http[0].alias[0].name == "mock-0123456789.us-east-1.elb.amazonaws.com" && aws_route53_record.tcp[0].type == "A"
    error_message = "alias records point at the load balancers"
  }
}

run "requires_a_gateway_configuration" {
  command = plan

  variables {
    gateway_config_file = null
  }

  expect_failures = [var.gateway_config_path]
}

run "rejects_a_bad_region" {
  command = plan

  variables {
    region = "moon-1"
  }

  expect_failures = [var.region]
}
