# terraform test for the ecs-service module (the Fargate part shared by gateway and
# collector), with the shared mocked AWS provider and two small containers.

mock_provider "aws" {
  source = "../../tests/mocks/aws"
}

variables {
  name   = "mcp-svc"
  cpu    = 512
  memory = 1024
  containers = [
    {
      name         = "app"
      image        = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.0.0"
      essential    = true
      portMappings = [{ name = "http", containerPort = 8080, protocol = "tcp" }]
      secrets = [
        { name = "TOKEN", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:token-AbCdEf" },
        { name = "DB_USER", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-QwErTy:username::" },
      ]
    },
    {
      name      = "sidecar"
      image     = "otel/opentelemetry-collector-contrib:0.159.0"
      essential = false
      secrets = [
        { name = "DB_PASSWORD", valueFrom = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-QwErTy:password::" },
      ]
    },
  ]
  task_policy_name = "remote-write"
  task_policy_statements = [{
    Sid      = "RemoteWriteToWorkspace"
    Effect   = "Allow"
    Action   = ["aps:RemoteWrite"]
    Resource = "arn:aws:aps:us-east-1:123456789012:workspace/ws-svc"
  }]
  subnet_ids         = ["subnet-priv-a", "subnet-priv-b"]
  security_group_ids = ["sg-tasks"]
  load_balancers = [
    { target_group_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/svc/0123456789abcdef", container_name = "app", container_port = 8080 },
  ]
}

run "task_definition_and_logs" {
  command = apply

  assert {
    condition     = aws_cloudwatch_log_group.this.name == "/ecs/mcp-svc" && aws_cloudwatch_log_group.this.retention_in_days == 30
    error_message = "one log group /ecs/<name>, kept 30 days"
  }

  assert {
    condition     = [for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c.name] == ["app", "sidecar"]
    error_message = "the containers are kept, in order"
  }

  assert {
    condition = [for c in jsondecode(aws_ecs_task_definition.this.container_definitions) : c.logConfiguration] == [
      for prefix in ["app", "sidecar"] : {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = "/ecs/mcp-svc"
          "awslogs-region"        = "us-east-1"
          "awslogs-stream-prefix" = prefix
          "mode"                  = "non-blocking"
          "max-buffer-size"       = "4m"
        }
      }
    ]
    error_message = "every container logs to the log group, non-blocking, under its own name as stream prefix"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].portMappings == var.containers[0].portMappings
    error_message = "the rest of each definition arrives unchanged"
  }

  assert {
    condition = (
      aws_ecs_task_definition.this.family == "mcp-svc" &&
      aws_ecs_task_definition.this.requires_compatibilities == toset(["FARGATE"]) &&
      aws_ecs_task_definition.this.network_mode == "awsvpc" &&
      aws_ecs_task_definition.this.cpu == "512" && aws_ecs_task_definition.this.memory == "1024" &&
      aws_ecs_task_definition.this.runtime_platform[0].cpu_architecture == "X86_64" &&
      length(aws_ecs_task_definition.this.volume) == 0
    )
    error_message = "a Fargate task in awsvpc mode, X86_64, no volumes by default"
  }

  assert {
    condition     = aws_ecs_task_definition.this.task_role_arn == aws_iam_role.task.arn && aws_ecs_task_definition.this.execution_role_arn == aws_iam_role.execution.arn
    error_message = "the task uses the module's task and execution roles"
  }

  assert {
    condition     = output.task_definition.container_definitions == aws_ecs_task_definition.this.container_definitions && output.log_group.name == "/ecs/mcp-svc"
    error_message = "the outputs are the resources"
  }
}

run "iam" {
  command = apply

  assert {
    condition     = aws_iam_role.execution.name == "mcp-svc-execution" && aws_iam_role.task.name == "mcp-svc-task"
    error_message = "roles <name>-execution and <name>-task"
  }

  assert {
    condition = alltrue([for r in [aws_iam_role.execution, aws_iam_role.task] : jsondecode(r.assume_role_policy).Statement == [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = "123456789012" }
        ArnLike      = { "aws:SourceArn" = "arn:aws:ecs:us-east-1:123456789012:*" }
      }
    }]])
    error_message = "only ECS tasks of this account and region assume the roles"
  }

  assert {
    condition     = aws_iam_role_policy.execution.name == "log-secrets" && [for s in jsondecode(aws_iam_role_policy.execution.policy).Statement : s.Sid] == ["WriteLogs", "ReadSecrets"]
    error_message = "without ECR repositories or a KMS key the execution role writes logs and reads secrets only"
  }

  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.execution.policy).Statement : s.Resource if s.Sid == "WriteLogs"]) == "arn:aws:logs:us-east-1:123456789012:log-group:/mock/log-group:*"
    error_message = "the execution role writes to its log group only"
  }

  assert {
    condition = one([for s in jsondecode(aws_iam_role_policy.execution.policy).Statement : s.Resource if s.Sid == "ReadSecrets"]) == [
      "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-QwErTy",
      "arn:aws:secretsmanager:us-east-1:123456789012:secret:token-AbCdEf",
    ]
    error_message = "the execution role reads exactly the secrets the containers reference (JSON keys cut off, each once, sorted)"
  }

  assert {
    condition     = aws_iam_role_policy.task.name == "remote-write" && jsondecode(aws_iam_role_policy.task.policy) == { Version = "2012-10-17", Statement = var.task_policy_statements }
    error_message = "the task role gets the given statements and nothing else"
  }
}

run "iam_with_ecr_kms_and_exec" {
  command = apply

  variables {
    execution_policy_name  = "pull-log-secrets"
    ecr_repository_arns    = ["arn:aws:ecr:us-east-1:123456789012:repository/app"]
    kms_key_arn            = "arn:aws:kms:us-east-1:123456789012:key/svc"
    enable_execute_command = true
  }

  assert {
    condition     = aws_iam_role_policy.execution.name == "pull-log-secrets" && [for s in jsondecode(aws_iam_role_policy.execution.policy).Statement : s.Sid] == ["EcrAuth", "EcrPull", "WriteLogs", "ReadSecrets", "DecryptSecrets"]
    error_message = "ECR pull and KMS decrypt are added when asked for"
  }

  assert {
    condition     = one([for s in jsondecode(aws_iam_role_policy.execution.policy).Statement : s.Resource if s.Sid == "EcrPull"]) == ["arn:aws:ecr:us-east-1:123456789012:repository/app"]
    error_message = "pulls are limited to the given repositories"
  }

  assert {
    condition     = aws_cloudwatch_log_group.this.kms_key_id == "arn:aws:kms:us-east-1:123456789012:key/svc"
    error_message = "the log group is encrypted with the key"
  }

  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Sid] == ["RemoteWriteToWorkspace", "EcsExec"] && aws_ecs_service.this.enable_execute_command
    error_message = "ECS Exec appends the ssmmessages statement after the given ones"
  }
}

run "service_on_fargate" {
  command = apply

  assert {
    condition     = aws_ecs_cluster.this.name == "mcp-svc" && [for s in aws_ecs_cluster.this.setting : [s.name, s.value]] == [["containerInsights", "enabled"]]
    error_message = "a cluster with Container Insights"
  }

  assert {
    condition     = aws_ecs_service.this.launch_type == "FARGATE" && length(aws_ecs_service.this.capacity_provider_strategy) == 0 && length(aws_ecs_cluster_capacity_providers.this) == 0
    error_message = "without capacity providers the service runs with launch type FARGATE"
  }

  assert {
    condition     = [for n in aws_ecs_service.this.network_configuration : [n.subnets, n.assign_public_ip, n.security_groups]] == [[toset(var.subnet_ids), false, toset(["sg-tasks"])]]
    error_message = "tasks run in the given subnets and security groups without public IPs"
  }

  assert {
    condition     = [for lb in aws_ecs_service.this.load_balancer : [lb.container_name, lb.container_port, lb.target_group_arn]] == [["app", 8080, var.load_balancers[0].target_group_arn]]
    error_message = "the service registers the given container port with the target group"
  }

  assert {
    condition = (
      aws_ecs_service.this.deployment_circuit_breaker[0].enable && aws_ecs_service.this.deployment_circuit_breaker[0].rollback &&
      aws_ecs_service.this.deployment_minimum_healthy_percent == 100 && aws_ecs_service.this.deployment_maximum_percent == 200 &&
      aws_ecs_service.this.health_check_grace_period_seconds == 60 && aws_ecs_service.this.propagate_tags == "SERVICE" &&
      aws_ecs_service.this.platform_version == "LATEST" && !aws_ecs_service.this.enable_ecs_managed_tags
    )
    error_message = "rolling deployments at full capacity with rollback"
  }

  assert {
    condition     = aws_appautoscaling_target.this[0].resource_id == "service/mcp-svc/mcp-svc" && aws_appautoscaling_target.this[0].min_capacity == 2 && aws_appautoscaling_target.this[0].max_capacity == 6
    error_message = "the service scales between 2 and 6 tasks"
  }

  assert {
    condition = [for c in aws_appautoscaling_policy.cpu[0].target_tracking_scaling_policy_configuration : [c.target_value, c.scale_in_cooldown, c.scale_out_cooldown, c.predefined_metric_specification[0].predefined_metric_type]] == [
      [60, 300, 60, "ECSServiceAverageCPUUtilization"]
    ]
    error_message = "target tracking keeps CPU at 60%"
  }

  assert {
    condition     = aws_appautoscaling_policy.cpu[0].name == "mcp-svc-cpu" && aws_appautoscaling_policy.cpu[0].resource_id == aws_appautoscaling_target.this[0].resource_id
    error_message = "the CPU policy is attached to the service's scalable target"
  }
}

run "capacity_providers_volumes_and_no_autoscaling" {
  command = apply

  variables {
    use_capacity_providers = true
    fargate_spot_weight    = 3
    min_capacity           = 1
    volumes                = ["shared"]
    cpu_architecture       = "ARM64"
    container_insights     = false
    enable_autoscaling     = false
  }

  assert {
    condition     = aws_ecs_cluster_capacity_providers.this[0].capacity_providers == toset(["FARGATE", "FARGATE_SPOT"]) && [for s in aws_ecs_cluster_capacity_providers.this[0].default_capacity_provider_strategy : [s.capacity_provider, s.weight, s.base]] == [["FARGATE", 1, 1]]
    error_message = "the cluster offers FARGATE and FARGATE_SPOT, FARGATE by default"
  }

  assert {
    condition     = { for s in aws_ecs_service.this.capacity_provider_strategy : s.capacity_provider => [s.weight, coalesce(s.base, 0)] } == { FARGATE = [1, 1], FARGATE_SPOT = [3, 0] }
    error_message = "the service runs min_capacity tasks on FARGATE and the rest weighted onto FARGATE_SPOT"
  }

  assert {
    condition     = [for v in aws_ecs_task_definition.this.volume : v.name] == ["shared"] && aws_ecs_task_definition.this.runtime_platform[0].cpu_architecture == "ARM64"
    error_message = "volumes and the CPU architecture reach the task definition"
  }

  assert {
    condition     = [for s in aws_ecs_cluster.this.setting : s.value] == ["disabled"]
    error_message = "Container Insights can be turned off"
  }

  assert {
    condition     = length(aws_appautoscaling_target.this) == 0 && length(aws_appautoscaling_policy.cpu) == 0 && output.autoscaling_target == []
    error_message = "without autoscaling there is no scalable target and no policy"
  }
}

run "rejects_containers_with_their_own_log_configuration" {
  command = plan

  variables {
    containers = [{ name = "app", image = "app:1", logConfiguration = { logDriver = "json-file" } }]
  }

  expect_failures = [var.containers]
}

run "rejects_a_task_role_without_statements" {
  command = plan

  variables {
    task_policy_statements = []
  }

  expect_failures = [var.task_policy_statements]
}
