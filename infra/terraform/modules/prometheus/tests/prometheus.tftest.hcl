# terraform test for the prometheus module, with the shared mocked AWS provider and
# small inline rule files (the repository's own rule files are loaded by the roots).

mock_provider "aws" {
  source = "../../tests/mocks/aws"
}

variables {
  name = "mcp-test"
  rule_groups = {
    "gateway-alerts"    = <<-YAML
      groups:
        - name: mcp_critical
          rules:
            - alert: MCPGatewayDown
              expr: up{job="mcp-gateway"} == 0
              for: 2m
              labels:
                severity: critical
    YAML
    "gateway-recording" = <<-YAML
      groups:
        - name: mcp_recording
          rules:
            - record: job:mcp_gateway_requests:rate5m
              expr: sum by (job) (rate(mcp_gateway_requests_total[5m]))
    YAML
  }
}

run "workspace_with_logging" {
  command = apply

  assert {
    condition     = aws_prometheus_workspace.this.alias == "mcp-test"
    error_message = "the workspace alias is the module name"
  }

  assert {
    condition     = [for l in aws_prometheus_workspace.this.logging_configuration : l.log_group_arn] == ["arn:aws:logs:us-east-1:123456789012:log-group:/mock/log-group:*"]
    error_message = "workspace logs must go to the module's log group"
  }

  assert {
    condition     = output.remote_write_url == "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-mock0000-0000-0000-0000-000000000000/api/v1/remote_write"
    error_message = "remote_write_url must be the workspace endpoint plus api/v1/remote_write"
  }
}

run "every_rule_file_is_a_namespace" {
  command = apply

  assert {
    condition     = toset(keys(aws_prometheus_rule_group_namespace.this)) == toset(["gateway-alerts", "gateway-recording"])
    error_message = "each rule file becomes one rule groups namespace named after it"
  }

  assert {
    condition = alltrue([
      for k, ns in aws_prometheus_rule_group_namespace.this :
      yamldecode(ns.data) == yamldecode(var.rule_groups[k]) && ns.workspace_id == aws_prometheus_workspace.this.id
    ])
    error_message = "each namespace must hold its file's rules, in this workspace"
  }

  assert {
    condition     = yamldecode(aws_prometheus_rule_group_namespace.this["gateway-alerts"].data).groups[0].rules[0].alert == "MCPGatewayDown"
    error_message = "the alerting rule must arrive unchanged"
  }
}

run "alerts_route_to_an_encrypted_topic_only_this_workspace_publishes_to" {
  command = apply

  assert {
    condition = yamldecode(yamldecode(aws_prometheus_alert_manager_definition.this[0].definition).alertmanager_config).receivers == [{
      name = "sns"
      sns_configs = [{
        topic_arn = "arn:aws:sns:us-east-1:123456789012:mock-alerts"
        sigv4     = { region = "us-east-1" }
        subject   = "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}"
        attributes = {
          severity  = "{{ .CommonLabels.severity }}"
          workspace = "mcp-test"
        }
      }]
    }]
    error_message = "the generated Alertmanager definition must send every alert to the SNS topic with SigV4"
  }

  assert {
    condition     = yamldecode(yamldecode(aws_prometheus_alert_manager_definition.this[0].definition).alertmanager_config).route.receiver == "sns"
    error_message = "the root route must use the SNS receiver"
  }

  assert {
    condition     = aws_sns_topic.alerts[0].kms_master_key_id == aws_kms_key.alerts[0].arn && aws_kms_key.alerts[0].enable_key_rotation
    error_message = "the alerts topic must be encrypted with the module's rotating key"
  }

  assert {
    condition = one([for st in jsondecode(aws_kms_key.alerts[0].policy).Statement : st if st.Sid == "PrometheusPublishesEncrypted"]) == {
      Sid       = "PrometheusPublishesEncrypted"
      Effect    = "Allow"
      Principal = { Service = "aps.amazonaws.com" }
      Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
      Resource  = "*"
      Condition = { StringEquals = { "aws:SourceAccount" = "123456789012" } }
    }
    error_message = "Amazon Managed Prometheus must be able to publish to the encrypted topic (the AWS managed aws/sns key cannot allow it)"
  }

  assert {
    condition     = output.alerts_kms_key_arn == aws_kms_key.alerts[0].arn
    error_message = "the key is an output (Grafana's role needs it to publish)"
  }

  assert {
    condition = jsondecode(aws_sns_topic_policy.alerts[0].policy).Statement == [{
      Sid       = "AllowThisWorkspaceToPublish"
      Effect    = "Allow"
      Principal = { Service = "aps.amazonaws.com" }
      Action    = ["sns:Publish", "sns:GetTopicAttributes"]
      Resource  = "arn:aws:sns:us-east-1:123456789012:mock-alerts"
      Condition = {
        ArnEquals    = { "aws:SourceArn" = "arn:aws:aps:us-east-1:123456789012:workspace/ws-mock0000-0000-0000-0000-000000000000" }
        StringEquals = { "AWS:SourceAccount" = "123456789012" }
      }
    }]
    error_message = "only this workspace may publish to the alerts topic"
  }
}

run "custom_definition_and_emulator_switch" {
  command = apply

  variables {
    alertmanager_definition = <<-YAML
      alertmanager_config: |
        route:
          receiver: pager
        receivers:
          - name: pager
            sns_configs:
              - topic_arn: arn:aws:sns:us-east-1:123456789012:pager
                sigv4:
                  region: us-east-1
    YAML
  }

  assert {
    condition     = length(aws_sns_topic.alerts) == 0 && length(aws_kms_key.alerts) == 0 && yamldecode(yamldecode(aws_prometheus_alert_manager_definition.this[0].definition).alertmanager_config).route.receiver == "pager"
    error_message = "a custom definition is loaded as given and no topic is created"
  }
}

run "alertmanager_can_be_switched_off" {
  command = apply

  variables {
    create_alertmanager_definition = false
  }

  assert {
    condition     = length(aws_prometheus_alert_manager_definition.this) == 0 && length(aws_sns_topic.alerts) == 0 && output.alerts_topic_arn == null
    error_message = "with the flag off there is no definition and no topic"
  }
}

run "rejects_a_file_without_groups" {
  command = plan

  variables {
    rule_groups = { broken = "rules: []" }
  }

  expect_failures = [var.rule_groups]
}
