# terraform test for the grafana module, with the shared mocked AWS provider.

mock_provider "aws" {
  source = "../../tests/mocks/aws"
}

variables {
  name = "mcp-test"
  prometheus_workspaces = {
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
  default_datasource = "use1"
}

run "workspace_uses_its_own_role_and_prometheus" {
  command = apply

  assert {
    condition     = aws_grafana_workspace.this.role_arn == aws_iam_role.this.arn && aws_grafana_workspace.this.permission_type == "CUSTOMER_MANAGED"
    error_message = "the workspace must use the module's IAM role"
  }

  assert {
    condition     = aws_grafana_workspace.this.data_sources == tolist(["PROMETHEUS"]) && aws_grafana_workspace.this.account_access_type == "CURRENT_ACCOUNT"
    error_message = "the workspace must have the Prometheus data source enabled"
  }

  assert {
    condition     = jsondecode(aws_grafana_workspace.this.configuration) == { plugins = { pluginAdminEnabled = false }, unifiedAlerting = { enabled = true } }
    error_message = "plugin installs off, unified alerting on"
  }

  assert {
    condition     = output.url == "https://g-mock000000.grafana-workspace.us-east-1.amazonaws.com"
    error_message = "url must be the https URL of the workspace endpoint"
  }
}

run "role_trusts_grafana_in_this_account_only" {
  command = apply

  assert {
    condition = jsondecode(aws_iam_role.this.assume_role_policy).Statement == [{
      Effect    = "Allow"
      Principal = { Service = "grafana.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = "123456789012" }
        StringLike   = { "aws:SourceArn" = "arn:aws:grafana:us-east-1:123456789012:/workspaces/*" }
      }
    }]
    error_message = "only Grafana workspaces of this account may assume the role"
  }
}

run "queries_are_scoped_to_the_workspaces" {
  command = apply

  assert {
    condition = jsondecode(aws_iam_role_policy.prometheus_query.policy).Statement[1] == {
      Sid      = "QueryTheseWorkspaces"
      Effect   = "Allow"
      Action   = ["aps:DescribeWorkspace", "aps:GetLabels", "aps:GetMetricMetadata", "aps:GetSeries", "aps:QueryMetrics"]
      Resource = ["arn:aws:aps:eu-west-1:123456789012:workspace/ws-euw1", "arn:aws:aps:us-east-1:123456789012:workspace/ws-use1"]
    }
    error_message = "query actions must be limited to the given workspaces"
  }

  assert {
    condition     = jsondecode(aws_iam_role_policy.prometheus_query.policy).Statement[0].Action == ["aps:ListWorkspaces"]
    error_message = "the only unscoped action is ListWorkspaces (it has no resource)"
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.prometheus_query.policy).Statement :
      s.Resource == "*" ? s.Action == ["aps:ListWorkspaces"] : true
    ])
    error_message = "no other action may use Resource *"
  }
}

run "datasources_for_the_publisher" {
  command = apply

  assert {
    condition = { for d in output.datasources : d.uid => d } == {
      "mcp-prometheus-euw1" = {
        uid       = "mcp-prometheus-euw1"
        name      = "MCP Prometheus (euw1)"
        type      = "prometheus"
        access    = "proxy"
        url       = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-euw1/"
        isDefault = false
        jsonData  = { httpMethod = "POST", timeInterval = "15s", sigV4Auth = true, sigV4AuthType = "ec2_iam_role", sigV4Region = "eu-west-1" }
      }
      "mcp-prometheus-use1" = {
        uid       = "mcp-prometheus-use1"
        name      = "MCP Prometheus (use1)"
        type      = "prometheus"
        access    = "proxy"
        url       = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-use1/"
        isDefault = true
        jsonData  = { httpMethod = "POST", timeInterval = "15s", sigV4Auth = true, sigV4AuthType = "ec2_iam_role", sigV4Region = "us-east-1" }
      }
    }
    error_message = "each workspace becomes a SigV4 Prometheus data source in its own region"
  }
}

run "grafana_alerting_may_publish_to_the_alerts_topics" {
  command = apply

  variables {
    alerts_sns_topic_arns = { use1 = "arn:aws:sns:us-east-1:123456789012:mcp-use1-alerts" }
    alerts_kms_key_arns   = { use1 = "arn:aws:kms:us-east-1:123456789012:key/alerts" }
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.sns[0].policy).Statement == [
      { Sid = "PublishAlerts", Effect = "Allow", Action = ["sns:Publish"], Resource = ["arn:aws:sns:us-east-1:123456789012:mcp-use1-alerts"] },
      { Sid = "EncryptAlerts", Effect = "Allow", Action = ["kms:Decrypt", "kms:GenerateDataKey*"], Resource = ["arn:aws:kms:us-east-1:123456789012:key/alerts"] },
    ]
    error_message = "Grafana may publish to the given (encrypted) topics only"
  }

  assert {
    condition     = aws_grafana_workspace.this.notification_destinations == tolist(["SNS"])
    error_message = "the SNS notification destination is enabled"
  }
}

run "publisher_token" {
  command = apply

  assert {
    condition     = aws_grafana_workspace_service_account.publisher[0].workspace_id == aws_grafana_workspace.this.id
    error_message = "the publisher's service account belongs to this workspace"
  }

  assert {
    condition     = aws_grafana_workspace_service_account_token.publisher[0].seconds_to_live == 2592000 && aws_grafana_workspace_service_account_token.publisher[0].name == "dashboards-publisher-1"
    error_message = "the token lives 30 days and its name carries the generation"
  }

  assert {
    condition     = nonsensitive(output.service_account_token) == "glsa_mockServiceAccountToken_0000"
    error_message = "the token is an output"
  }
}

run "rotating_the_token_replaces_it" {
  command = plan

  variables {
    service_account_token_generation = 2
  }

  assert {
    condition     = aws_grafana_workspace_service_account_token.publisher[0].name == "dashboards-publisher-2"
    error_message = "a new generation names (and so replaces) the token"
  }
}

run "rejects_non_workspace_arns" {
  command = plan

  variables {
    prometheus_workspaces = {
      bad = { arn = "*", endpoint = "https://example.invalid/", region = "us-east-1" }
    }
  }

  expect_failures = [var.prometheus_workspaces]
}
