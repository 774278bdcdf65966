# terraform test for the global root (the federation), with the shared mocked AWS
# provider. The Collector image, its configuration and the rule files are the
# repository's otel/.

mock_provider "aws" {
  source = "../tests/mocks/aws"
}

variables {
  region                              = "us-east-1"
  certificate_arn                     = "arn:aws:acm:us-east-1:123456789012:certificate/global"
  allowed_cidr_blocks                 = ["198.51.100.10/32", "203.0.113.20/32"]
  central_jaeger_otlp_endpoint        = "jaeger.global.example.com:4317"
  central_logs_endpoint               = "https://logs.global.example.com"
  central_logs_credentials_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp-global-logs-QwErTy"
  federation_token_replica_regions    = ["eu-west-1"]
  region_workspaces = {
    use1 = {
      arn      = "arn:aws:aps:us-east-1:123456789012:workspace/ws-use1"
      endpoint = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-use1/"
      region   = "us-east-1"
    }
    euw1 = {
      arn      = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-euw1"
      endpoint = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-euw1/"
      region   = "eu-west-1"
    }
  }

  # Every variable terraform.tfvars.example sets is pinned here, defaults included: `terraform
  # test` also reads a terraform.tfvars in the root (the README's first step copies the example
  # there), and the assertions below are written against these values, not an operator's.
  dns                      = null
  grafana_admin_group_ids  = []
  grafana_viewer_group_ids = []
}

run "federation" {
  command = apply

  assert {
    condition     = output.federation_endpoint == "mock-0123456789.us-east-1.elb.amazonaws.com:4317"
    error_message = "regions forward OTLP/gRPC to the federation Collector on 4317"
  }

  assert {
    condition     = output.grafana_url == "https://g-mock000000.grafana-workspace.us-east-1.amazonaws.com"
    error_message = "the global Grafana URL is an output"
  }

  assert {
    condition     = toset([for d in output.grafana_datasources : d.uid]) == toset(["mcp-prometheus-global", "mcp-prometheus-use1", "mcp-prometheus-euw1"])
    error_message = "the global Grafana views the global workspace and every region's"
  }

  assert {
    condition     = [for d in output.grafana_datasources : d.uid if d.isDefault] == ["mcp-prometheus-global"]
    error_message = "the global workspace is the default data source, as in the dashboards' provisioning"
  }

  assert {
    condition     = { for d in output.grafana_datasources : d.uid => d.jsonData.sigV4Region } == { "mcp-prometheus-global" = "us-east-1", "mcp-prometheus-use1" = "us-east-1", "mcp-prometheus-euw1" = "eu-west-1" }
    error_message = "each data source signs for its workspace's region"
  }

  assert {
    condition = output.prometheus_rule_namespaces == sort([
      for f in fileset("${local.otel_dir}/prometheus/rules", "*.yml") : trimsuffix(f, ".yml") if !endswith(f, "_test.yml") && !endswith(f, ".test.yml")
    ])
    error_message = "the global workspace loads the rule files too"
  }
}

run "federation_collector_configuration" {
  command = apply

  assert {
    condition     = local.collector_image == yamldecode(file("${local.otel_dir}/collector/distribution.yaml")).image
    error_message = "the federation Collector runs the image pinned in otel/collector/distribution.yaml"
  }

  assert {
    condition     = yamldecode(local.collector_config) == yamldecode(file("${local.otel_dir}/collector/federation.yaml"))
    error_message = "the federation Collector runs otel/collector/federation.yaml"
  }

  assert {
    condition = local.collector_secrets == {
      FEDERATION_BEARER_TOKEN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mock-secret-AbCdEf"
      CENTRAL_LOGS_USERNAME   = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp-global-logs-QwErTy:username::"
      CENTRAL_LOGS_PASSWORD   = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp-global-logs-QwErTy:password::"
    }
    error_message = "the generated federation token and the log store credentials come from Secrets Manager"
  }

  assert {
    condition = alltrue([
      for ref in regexall("\\$\\{env:([A-Z_]+)\\}", file("${local.otel_dir}/collector/federation.yaml")) :
      contains(concat(["AWS_REGION", "DEPLOYMENT_ENVIRONMENT", "AMP_GLOBAL_REMOTE_WRITE_URL"], keys(local.collector_environment), keys(local.collector_secrets)), ref[0])
    ])
    error_message = "every $${env:NAME} without a default in federation.yaml must be set on the federation Collector"
  }

  assert {
    condition     = [for r in aws_secretsmanager_secret.federation[0].replica : r.region] == ["eu-west-1"]
    error_message = "the token secret is replicated to the federated regions"
  }

  assert {
    condition = output.federation_token_secret_arns == {
      "us-east-1" = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mock-secret-AbCdEf"
      "eu-west-1" = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mock-secret-AbCdEf"
    }
    error_message = "each region learns the ARN of its replica"
  }
}

run "without_rules_or_grafana" {
  command = apply

  variables {
    load_rules          = false
    enable_grafana      = false
    enable_alertmanager = false
  }

  assert {
    condition     = length(output.prometheus_rule_namespaces) == 0 && output.grafana_url == null && length(output.grafana_datasources) == 0
    error_message = "the flags leave out the rules, Grafana and Alertmanager"
  }
}

run "dns_name_for_the_federation" {
  command = apply

  variables {
    dns = { zone_id = "Z0000000000MOCK", otlp_name = "otel.global.example.com" }
  }

  assert {
    condition     = output.federation_endpoint == "otel.global.example.com:4317" && aws_route53_record.otlp[0].name == "otel.global.example.com"
    error_message = "with DNS the federation endpoint is the name"
  }
}
