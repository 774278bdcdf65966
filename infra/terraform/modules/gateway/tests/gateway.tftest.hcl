# terraform test for the gateway module, with the shared mocked AWS provider and a
# small inline Collector configuration (the roots pass otel/collector/region.yaml).

mock_provider "aws" {
  source = "../../tests/mocks/aws"
}

variables {
  name                        = "mcp-test"
  region_label                = "use1"
  vpc_id                      = "vpc-0mock000000000000"
  public_subnet_ids           = ["subnet-pub-a", "subnet-pub-b"]
  private_subnet_ids          = ["subnet-priv-a", "subnet-priv-b"]
  image                       = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp-gateway:1.2.3"
  certificate_arn             = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
  redis_url                   = "rediss://master.mock.abcdef.use1.cache.amazonaws.com:6379"
  redis_auth_secret_arn       = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp-test-redis-auth-AbCdEf"
  prometheus_workspace_arn    = "arn:aws:aps:us-east-1:123456789012:workspace/ws-region"
  prometheus_remote_write_url = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-region/api/v1/remote_write"
  federation_endpoint         = "otel.global.example.com:4317"
  collector_config            = <<-YAML
    receivers:
      otlp:
        protocols:
          grpc:
            endpoint: 127.0.0.1:4317
    processors:
      memory_limiter:
        check_interval: 1s
        limit_percentage: 80
      batch: {}
    exporters:
      prometheusremotewrite:
        endpoint: $${env:AMP_REMOTE_WRITE_URL}
        auth:
          authenticator: sigv4auth
    extensions:
      sigv4auth:
        region: $${env:AWS_REGION}
    service:
      extensions: [sigv4auth]
      pipelines:
        metrics:
          receivers: [otlp]
          processors: [memory_limiter, batch]
          exporters: [prometheusremotewrite]
  YAML
}

run "load_balancers_alb_for_http_and_websockets_nlb_for_tcp_8445" {
  command = apply

  assert {
    condition     = aws_lb.http.load_balancer_type == "application" && !aws_lb.http.internal && aws_lb.http.subnets == toset(var.public_subnet_ids)
    error_message = "an internet-facing ALB in the public subnets"
  }

  assert {
    condition     = aws_lb.http.idle_timeout == 3600
    error_message = "the ALB idle timeout must outlast idle SSE streams and WebSockets"
  }

  assert {
    condition     = aws_lb.http.drop_invalid_header_fields
    error_message = "the ALB must drop invalid header fields"
  }

  assert {
    condition     = aws_lb_listener.https.port == 443 && aws_lb_listener.https.protocol == "HTTPS"
    error_message = "HTTPS on 443"
  }

  assert {
    condition     = aws_lb_listener.https.certificate_arn == var.certificate_arn && startswith(aws_lb_listener.https.ssl_policy, "ELBSecurityPolicy-TLS13")
    error_message = "the listener uses the given certificate and a TLS 1.3 policy"
  }

  assert {
    condition     = [for a in aws_lb_listener.https.default_action : [a.type, a.target_group_arn]] == [["forward", aws_lb_target_group.http.arn]]
    error_message = "HTTPS forwards to the gateway target group"
  }

  assert {
    condition = [for a in aws_lb_listener.http_redirect[0].default_action : [a.type, a.redirect[0].port, a.redirect[0].protocol, a.redirect[0].status_code]] == [
      ["redirect", "443", "HTTPS", "HTTP_301"]
    ]
    error_message = "port 80 only redirects to HTTPS"
  }

  assert {
    condition     = aws_lb_listener.http_redirect[0].port == 80 && aws_lb_listener.http_redirect[0].protocol == "HTTP"
    error_message = "the redirect listens on HTTP 80"
  }

  assert {
    condition     = aws_lb_target_group.http.port == 8080 && aws_lb_target_group.http.protocol == "HTTP" && aws_lb_target_group.http.target_type == "ip"
    error_message = "the ALB targets the gateway's HTTP port 8080 by task IP"
  }

  assert {
    condition     = aws_lb_target_group.http.health_check[0].path == "/readyz" && aws_lb_target_group.http.health_check[0].matcher == "200" && aws_lb_target_group.http.health_check[0].protocol == "HTTP"
    error_message = "the ALB checks /readyz"
  }

  assert {
    condition     = aws_lb.tcp.load_balancer_type == "network" && aws_lb.tcp.enable_cross_zone_load_balancing
    error_message = "a cross-zone NLB"
  }

  assert {
    condition     = aws_lb_listener.tcp.port == 8445 && aws_lb_listener.tcp.protocol == "TCP" && aws_lb_listener.tcp.tcp_idle_timeout_seconds == 3600
    error_message = "plain TCP on 8445 with a long idle timeout"
  }

  assert {
    condition     = [for a in aws_lb_listener.tcp.default_action : [a.type, a.target_group_arn]] == [["forward", aws_lb_target_group.tcp.arn]]
    error_message = "8445 forwards to the bridge target group"
  }

  assert {
    condition     = aws_lb_target_group.tcp.port == 8445 && aws_lb_target_group.tcp.protocol == "TCP" && aws_lb_target_group.tcp.target_type == "ip"
    error_message = "the NLB targets the bridge's 8445"
  }

  assert {
    condition = [for h in aws_lb_target_group.tcp.health_check : [h.protocol, h.port, h.path]] == [
      ["HTTP", "8080", "/readyz"]
    ]
    error_message = "the NLB checks the task's /readyz on 8080"
  }
}

run "nlb_can_terminate_tls" {
  command = apply

  variables {
    tcp_tls_certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/tcp"
  }

  assert {
    condition     = aws_lb_listener.tcp.protocol == "TLS" && aws_lb_listener.tcp.certificate_arn == "arn:aws:acm:us-east-1:123456789012:certificate/tcp" && aws_lb_listener.tcp.port == 8445
    error_message = "with a certificate the 8445 listener terminates TLS"
  }
}

run "task_definition_gateway_bridge_and_collector" {
  command = apply

  assert {
    condition     = [for c in jsondecode(module.service.task_definition.container_definitions) : c.name] == ["gateway", "bridge", "collector"]
    error_message = "the task runs the gateway, the TCP bridge and the Collector"
  }

  assert {
    condition     = alltrue([for c in jsondecode(module.service.task_definition.container_definitions) : c.essential])
    error_message = "all three containers are essential"
  }

  assert {
    condition     = module.service.task_definition.requires_compatibilities == toset(["FARGATE"]) && module.service.task_definition.network_mode == "awsvpc"
    error_message = "a Fargate task in awsvpc mode (the containers share localhost)"
  }

  assert {
    condition     = module.service.task_definition.task_role_arn == module.service.task_role.arn && module.service.task_definition.execution_role_arn == module.service.execution_role.arn
    error_message = "the task uses the module's task and execution roles"
  }

  assert {
    condition     = [for p in one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "gateway"]).portMappings : p.containerPort] == [8080, 9090]
    error_message = "the gateway exposes 8080 (HTTP) and 9090 (metrics)"
  }

  assert {
    condition = { for e in one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "gateway"]).environment : e.name => e.value } == {
      MCP_GATEWAY_REDIS_URL       = "rediss://master.mock.abcdef.use1.cache.amazonaws.com:6379"
      OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:4317"
      OTEL_EXPORTER_OTLP_PROTOCOL = "grpc"
      OTEL_SERVICE_NAME           = "mcp-gateway"
      OTEL_RESOURCE_ATTRIBUTES    = "cloud.platform=aws_ecs,cloud.provider=aws,cloud.region=us-east-1,deployment.environment.name=production,mcp.region=use1,service.namespace=mcp"
    }
    error_message = "the gateway gets the Redis URL without credentials and sends OTLP to the sidecar"
  }

  assert {
    condition = one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "gateway"]).secrets == [
      { name = "MCP_GATEWAY_REDIS_PASSWORD", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp-test-redis-auth-AbCdEf" }
    ]
    error_message = "the Redis password comes from Secrets Manager as a secret env var"
  }

  assert {
    condition     = strcontains(join(" ", one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "gateway"]).healthCheck.command), "http://127.0.0.1:8080/healthz")
    error_message = "the container health check probes liveness (/healthz); readiness (/readyz) is for the load balancers"
  }

  assert {
    condition     = one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "gateway"]).dependsOn == [{ containerName = "collector", condition = "START" }]
    error_message = "the gateway starts after (and stops before) the Collector"
  }

  assert {
    condition     = one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "gateway"]).logConfiguration.options["awslogs-group"] == "/ecs/mcp-test"
    error_message = "gateway logs go to the module's log group"
  }

  assert {
    condition = [
      for c in jsondecode(module.service.task_definition.container_definitions) : concat(c.entryPoint, c.command) if c.name == "bridge"
    ] == [["mcp-gateway", "bridge", "--listen", "0.0.0.0:8445", "--gateway", "ws://127.0.0.1:8080/ws"]]
    error_message = "the bridge listens on 8445 and relays to the gateway's /ws over localhost"
  }

  assert {
    condition     = [for p in one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "bridge"]).portMappings : p.containerPort] == [8445, 9092]
    error_message = "the bridge exposes 8445 (MCPB) and 9092 (metrics)"
  }

  assert {
    condition     = { for e in one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "bridge"]).environment : e.name => e.value }["OTEL_SERVICE_NAME"] == "mcp-gateway-tcp-bridge"
    error_message = "the bridge reports under the service name its code uses (app.tcp_bridge.metrics.SERVICE)"
  }

  assert {
    condition     = one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "bridge"]).dependsOn == [{ containerName = "gateway", condition = "HEALTHY" }]
    error_message = "the bridge waits for a healthy gateway"
  }

  assert {
    condition     = one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "bridge"]).image == var.image
    error_message = "the bridge runs from the gateway image by default"
  }

  assert {
    condition     = one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "collector"]).image == "otel/opentelemetry-collector-contrib:0.159.0"
    error_message = "the Collector runs the pinned image"
  }

  assert {
    condition     = one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "collector"]).command == ["--config=env:OTEL_COLLECTOR_CONFIG"]
    error_message = "the Collector reads its configuration from OTEL_COLLECTOR_CONFIG"
  }

  assert {
    condition = yamldecode({
      for e in one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "collector"]).environment : e.name => e.value
    }["OTEL_COLLECTOR_CONFIG"]) == yamldecode(var.collector_config)
    error_message = "the Collector's configuration is the given YAML, unchanged"
  }

  assert {
    condition = {
      for e in one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "collector"]).environment : e.name => e.value if e.name != "OTEL_COLLECTOR_CONFIG"
      } == {
      AMP_REMOTE_WRITE_URL     = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-region/api/v1/remote_write"
      AWS_REGION               = "us-east-1"
      BRIDGE_METRICS_TARGET    = "127.0.0.1:9092"
      DEPLOYMENT_ENVIRONMENT   = "production"
      FEDERATION_OTLP_ENDPOINT = "otel.global.example.com:4317"
      GATEWAY_METRICS_TARGET   = "127.0.0.1:9090"
      MCP_REGION               = "use1"
    }
    error_message = "the Collector gets the remote-write URL, the federation endpoint, the region and the task's own metrics endpoints to scrape"
  }
}

run "service_wiring_and_target_tracking" {
  command = apply

  assert {
    condition = toset([for lb in module.service.service.load_balancer : [lb.container_name, tostring(lb.container_port), lb.target_group_arn]]) == toset([
      ["gateway", "8080", aws_lb_target_group.http.arn],
      ["bridge", "8445", aws_lb_target_group.tcp.arn],
    ])
    error_message = "the ALB reaches gateway:8080 and the NLB reaches bridge:8445"
  }

  assert {
    condition     = [for n in module.service.service.network_configuration : [n.subnets, n.assign_public_ip, n.security_groups]] == [[toset(var.private_subnet_ids), false, toset([aws_security_group.tasks.id])]]
    error_message = "tasks run in the private subnets without public IPs"
  }

  assert {
    condition     = module.service.service.deployment_circuit_breaker[0].enable && module.service.service.deployment_circuit_breaker[0].rollback && module.service.service.deployment_minimum_healthy_percent == 100
    error_message = "deployments keep full capacity and roll back when tasks fail"
  }

  assert {
    condition     = module.service.log_group.name == "/ecs/mcp-test" && module.service.log_group.retention_in_days == 30
    error_message = "container logs are kept for 30 days"
  }

  assert {
    condition     = module.service.autoscaling_target[0].min_capacity == 2 && module.service.autoscaling_target[0].max_capacity == 10 && module.service.autoscaling_target[0].resource_id == "service/mcp-test/mcp-test"
    error_message = "the service scales between 2 and 10 tasks"
  }

  assert {
    condition = [for c in module.service.cpu_scaling_policy[0].target_tracking_scaling_policy_configuration : [c.target_value, c.predefined_metric_specification[0].predefined_metric_type]] == [
      [60, "ECSServiceAverageCPUUtilization"]
    ]
    error_message = "target tracking keeps CPU at 60%"
  }

  assert {
    condition     = aws_appautoscaling_policy.requests[0].policy_type == "TargetTrackingScaling" && aws_appautoscaling_policy.requests[0].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].resource_label == "app/mock/0123456789abcdef/targetgroup/mock/0123456789abcdef"
    error_message = "target tracking on ALB requests per target uses the ALB/target group label"
  }
}

run "autoscaling_off_creates_no_scaling_resources" {
  command = apply

  variables {
    enable_autoscaling = false
    desired_count      = 3
  }

  assert {
    condition     = length(module.service.autoscaling_target) == 0 && length(module.service.cpu_scaling_policy) == 0 && length(aws_appautoscaling_policy.requests) == 0
    error_message = "without autoscaling there is no scalable target and no policy"
  }

  assert {
    condition     = module.service.service.desired_count == 2
    error_message = "desired_count only sets the count when the service is created: Terraform never resets a running service's count"
  }
}

run "task_role_writes_to_the_workspace_only" {
  command = apply

  assert {
    condition = jsondecode(module.service.task_role_policy.policy) == {
      Version = "2012-10-17"
      Statement = [{
        Sid      = "RemoteWriteToWorkspace"
        Effect   = "Allow"
        Action   = ["aps:RemoteWrite"]
        Resource = "arn:aws:aps:us-east-1:123456789012:workspace/ws-region"
      }]
    }
    error_message = "the task role may remote-write to this workspace and do nothing else"
  }

  assert {
    condition     = jsondecode(module.service.task_role.assume_role_policy).Statement[0].Principal == { Service = "ecs-tasks.amazonaws.com" }
    error_message = "only ECS tasks assume the task role"
  }
}

run "execution_role_reads_only_its_secrets_and_log_group" {
  command = apply

  variables {
    gateway_secrets = { MCP_GATEWAY_JWT_KEY = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-QwErTy:key::" }
    collector_secrets = {
      FEDERATION_BEARER_TOKEN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:federation-ZxCvBn"
      LOGS_USERNAME           = "arn:aws:secretsmanager:us-east-1:123456789012:secret:logs-PoIuYt:username::"
      LOGS_PASSWORD           = "arn:aws:secretsmanager:us-east-1:123456789012:secret:logs-PoIuYt:password::"
    }
  }

  assert {
    condition = one([for s in jsondecode(module.service.execution_role_policy.policy).Statement : s if s.Sid == "ReadSecrets"]) == {
      Sid    = "ReadSecrets"
      Effect = "Allow"
      Action = ["secretsmanager:GetSecretValue"]
      Resource = [
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:federation-ZxCvBn",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-QwErTy",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:logs-PoIuYt",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:mcp-test-redis-auth-AbCdEf",
      ]
    }
    error_message = "the execution role may read exactly the referenced secrets"
  }

  assert {
    condition     = one([for s in jsondecode(module.service.execution_role_policy.policy).Statement : s.Resource if s.Sid == "WriteLogs"]) == "arn:aws:logs:us-east-1:123456789012:log-group:/mock/log-group:*"
    error_message = "the execution role writes to its log group only"
  }

  assert {
    condition = one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "collector"]).secrets == [
      { name = "FEDERATION_BEARER_TOKEN", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:federation-ZxCvBn" },
      { name = "LOGS_PASSWORD", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:logs-PoIuYt:password::" },
      { name = "LOGS_USERNAME", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:logs-PoIuYt:username::" },
    ]
    error_message = "Collector secrets arrive as secret env vars (JSON keys kept)"
  }
}

run "gateway_config_is_written_by_an_init_container" {
  command = apply

  variables {
    gateway_config = <<-YAML
      allowed_hosts: [mcp.use1.example.com, 127.0.0.1]
      namespaces: {}
    YAML
  }

  assert {
    condition     = [for c in jsondecode(module.service.task_definition.container_definitions) : c.name] == ["gateway", "bridge", "collector", "gateway-config"]
    error_message = "a fourth, non-essential container writes the configuration"
  }

  assert {
    condition     = yamldecode(one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "gateway-config"]).environment[0].value) == { allowed_hosts = ["mcp.use1.example.com", "127.0.0.1"], namespaces = {} }
    error_message = "the init container carries the configuration unchanged"
  }

  assert {
    condition     = !one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "gateway-config"]).essential
    error_message = "the init container is allowed to exit"
  }

  assert {
    condition = {
      for e in one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "gateway"]).environment : e.name => e.value
    }["MCP_GATEWAY_CONFIG"] == "/etc/mcp-gateway/conf/gateway.yaml"
    error_message = "the gateway reads the written file"
  }

  assert {
    condition     = contains(one([for c in jsondecode(module.service.task_definition.container_definitions) : c if c.name == "gateway"]).dependsOn, { containerName = "gateway-config", condition = "SUCCESS" })
    error_message = "the gateway starts only after the file is written"
  }

  assert {
    condition     = [for v in module.service.task_definition.volume : v.name] == ["gateway-config"]
    error_message = "the file lives on a task volume"
  }
}

run "security_groups" {
  command = apply

  assert {
    condition     = [for r in aws_vpc_security_group_ingress_rule.alb_https : [r.from_port, r.to_port, r.cidr_ipv4]] == [[443, 443, "0.0.0.0/0"]]
    error_message = "clients reach the ALB on 443"
  }

  assert {
    condition     = [for r in aws_vpc_security_group_ingress_rule.nlb_tcp : [r.from_port, r.to_port, r.ip_protocol]] == [[8445, 8445, "tcp"]]
    error_message = "clients reach the NLB on TCP 8445"
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.tasks_http_from_alb.referenced_security_group_id == aws_security_group.alb.id && aws_vpc_security_group_ingress_rule.tasks_http_from_alb.from_port == 8080
    error_message = "tasks accept 8080 from the ALB"
  }

  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.tasks_from_nlb : r.from_port]) == toset([8445, 8080]) && alltrue([for r in aws_vpc_security_group_ingress_rule.tasks_from_nlb : r.referenced_security_group_id == aws_security_group.nlb.id])
    error_message = "tasks accept 8445 (and readiness checks on 8080) from the NLB only"
  }
}

run "rejects_a_host_allow_list_that_locks_out_the_bridge" {
  command = plan

  variables {
    gateway_config = "allowed_hosts: [mcp.use1.example.com]"
  }

  expect_failures = [var.gateway_config]
}

run "rejects_plaintext_redis" {
  command = plan

  variables {
    redis_url = "redis://user:secret@redis:6379"
  }

  expect_failures = [var.redis_url]
}

run "rejects_unpinned_collector" {
  command = plan

  variables {
    collector_image = "otel/opentelemetry-collector-contrib:latest"
  }

  expect_failures = [var.collector_image]
}

run "rejects_short_idle_timeout" {
  command = plan

  variables {
    alb_idle_timeout_seconds = 60
  }

  expect_failures = [var.alb_idle_timeout_seconds]
}
