# terraform test for the federation Collector module, with the shared mocked AWS
# provider and a small inline Collector configuration (the global root passes
# otel/collector/federation.yaml).

mock_provider "aws" {
  source = "../../tests/mocks/aws"
}

variables {
  name                        = "mcp-global-otel"
  vpc_id                      = "vpc-0mock000000000000"
  public_subnet_ids           = ["subnet-pub-a", "subnet-pub-b"]
  private_subnet_ids          = ["subnet-priv-a", "subnet-priv-b"]
  allowed_cidr_blocks         = ["198.51.100.10/32", "203.0.113.20/32"]
  certificate_arn             = "arn:aws:acm:us-east-1:123456789012:certificate/global"
  prometheus_workspace_arn    = "arn:aws:aps:us-east-1:123456789012:workspace/ws-global"
  prometheus_remote_write_url = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-global/api/v1/remote_write"
  secrets = {
    FEDERATION_BEARER_TOKEN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:federation-AbCdEf"
  }
  config = <<-YAML
    receivers:
      otlp:
        protocols:
          grpc:
            endpoint: 0.0.0.0:4317
            auth:
              authenticator: bearertokenauth/regions
    extensions:
      health_check:
        endpoint: 0.0.0.0:13133
      bearertokenauth/regions:
        token: $${env:FEDERATION_BEARER_TOKEN}
    exporters:
      debug: {}
    service:
      extensions: [health_check, bearertokenauth/regions]
      pipelines:
        metrics:
          receivers: [otlp]
          exporters: [debug]
  YAML
}

run "receives_otlp_grpc_over_tls_from_the_regions_only" {
  command = apply

  assert {
    condition     = aws_lb.this.load_balancer_type == "network" && aws_lb.this.enable_cross_zone_load_balancing
    error_message = "a cross-zone NLB"
  }

  assert {
    condition     = aws_lb_listener.otlp.port == 4317 && aws_lb_listener.otlp.protocol == "TLS" && aws_lb_listener.otlp.certificate_arn == var.certificate_arn
    error_message = "regions send OTLP/gRPC over TLS on 4317"
  }

  assert {
    condition     = aws_lb_listener.otlp.alpn_policy == "HTTP2Preferred" && startswith(aws_lb_listener.otlp.ssl_policy, "ELBSecurityPolicy-TLS13")
    error_message = "the TLS listener negotiates h2 (gRPC clients require it) with a TLS 1.3 policy"
  }

  assert {
    condition     = [for a in aws_lb_listener.otlp.default_action : [a.type, a.target_group_arn]] == [["forward", aws_lb_target_group.otlp.arn]]
    error_message = "the listener forwards to the Collector target group"
  }

  assert {
    condition     = aws_lb_target_group.otlp.port == 4317 && aws_lb_target_group.otlp.protocol == "TCP" && aws_lb_target_group.otlp.target_type == "ip"
    error_message = "the NLB passes the gRPC stream to the Collector's 4317"
  }

  assert {
    condition     = [for h in aws_lb_target_group.otlp.health_check : [h.protocol, h.port, h.path]] == [["HTTP", "13133", "/"]]
    error_message = "the NLB checks the Collector's health_check extension"
  }

  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.nlb_otlp : r.cidr_ipv4]) == toset(var.allowed_cidr_blocks) && alltrue([for r in aws_vpc_security_group_ingress_rule.nlb_otlp : r.from_port == 4317 && r.to_port == 4317])
    error_message = "only the regions' egress addresses reach the NLB, on 4317"
  }

  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.tasks_from_nlb : r.from_port]) == toset([4317, 13133]) && alltrue([for r in aws_vpc_security_group_ingress_rule.tasks_from_nlb : r.referenced_security_group_id == aws_security_group.nlb.id])
    error_message = "the tasks accept the OTLP and health ports from the NLB only"
  }
}

run "collector_task" {
  command = apply

  assert {
    condition     = [for c in jsondecode(module.service.task_definition.container_definitions) : [c.name, c.image, c.command]] == [["collector", "otel/opentelemetry-collector-contrib:0.159.0", ["--config=env:OTEL_COLLECTOR_CONFIG"]]]
    error_message = "one pinned Collector container reading its configuration from the environment"
  }

  assert {
    condition     = yamldecode({ for e in jsondecode(module.service.task_definition.container_definitions)[0].environment : e.name => e.value }["OTEL_COLLECTOR_CONFIG"]) == yamldecode(var.config)
    error_message = "the configuration arrives unchanged"
  }

  assert {
    condition = {
      for e in jsondecode(module.service.task_definition.container_definitions)[0].environment : e.name => e.value if e.name != "OTEL_COLLECTOR_CONFIG"
      } == {
      AMP_GLOBAL_REMOTE_WRITE_URL = var.prometheus_remote_write_url
      AWS_REGION                  = "us-east-1"
      DEPLOYMENT_ENVIRONMENT      = "production"
    }
    error_message = "the Collector is told the global workspace's remote-write URL and its signing region"
  }

  assert {
    condition     = jsondecode(module.service.task_definition.container_definitions)[0].secrets == [{ name = "FEDERATION_BEARER_TOKEN", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:federation-AbCdEf" }]
    error_message = "the federation token arrives from Secrets Manager"
  }

  assert {
    condition     = toset([for lb in module.service.service.load_balancer : [lb.container_name, tostring(lb.container_port)]]) == toset([["collector", "4317"]])
    error_message = "the service registers the Collector's 4317 with the NLB"
  }

  assert {
    condition     = module.service.autoscaling_target[0].min_capacity == 2 && module.service.cpu_scaling_policy[0].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].predefined_metric_type == "ECSServiceAverageCPUUtilization"
    error_message = "the Collector service scales on CPU from two tasks"
  }

  assert {
    condition     = output.endpoint == "mock-0123456789.us-east-1.elb.amazonaws.com:4317"
    error_message = "the endpoint is host:4317"
  }
}

run "iam_is_scoped" {
  command = apply

  assert {
    condition = jsondecode(module.service.task_role_policy.policy).Statement == [{
      Sid      = "RemoteWriteToWorkspace"
      Effect   = "Allow"
      Action   = ["aps:RemoteWrite"]
      Resource = "arn:aws:aps:us-east-1:123456789012:workspace/ws-global"
    }]
    error_message = "the task role may remote-write to the global workspace only"
  }

  assert {
    condition     = one([for s in jsondecode(module.service.execution_role_policy.policy).Statement : s.Resource if s.Sid == "ReadSecrets"]) == ["arn:aws:secretsmanager:us-east-1:123456789012:secret:federation-AbCdEf"]
    error_message = "the execution role reads the federation token and nothing else"
  }
}

run "admits_nobody_before_the_first_region" {
  command = plan

  variables {
    allowed_cidr_blocks = []
  }

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.nlb_otlp) == 0
    error_message = "without regions the NLB admits nobody"
  }
}

run "rejects_invalid_cidr_blocks" {
  command = plan

  variables {
    allowed_cidr_blocks = ["the-internet"]
  }

  expect_failures = [var.allowed_cidr_blocks]
}
