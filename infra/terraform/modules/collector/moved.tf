# The ECS service, its roles, log group and CPU scaling moved into module.service
# (../ecs-service). These blocks make `terraform plan` move the state of a deployed federation
# Collector to the new addresses instead of destroying and re-creating the service. Keep them
# while any state may still hold the old addresses.

moved {
  from = aws_cloudwatch_log_group.this
  to   = module.service.aws_cloudwatch_log_group.this
}

moved {
  from = aws_iam_role.execution
  to   = module.service.aws_iam_role.execution
}

moved {
  from = aws_iam_role_policy.execution
  to   = module.service.aws_iam_role_policy.execution
}

moved {
  from = aws_iam_role.task
  to   = module.service.aws_iam_role.task
}

moved {
  from = aws_iam_role_policy.task
  to   = module.service.aws_iam_role_policy.task
}

moved {
  from = aws_ecs_cluster.this
  to   = module.service.aws_ecs_cluster.this
}

moved {
  from = aws_ecs_task_definition.this
  to   = module.service.aws_ecs_task_definition.this
}

moved {
  from = aws_ecs_service.this
  to   = module.service.aws_ecs_service.this
}

moved {
  from = aws_appautoscaling_target.this
  to   = module.service.aws_appautoscaling_target.this
}

moved {
  from = aws_appautoscaling_policy.cpu
  to   = module.service.aws_appautoscaling_policy.cpu
}
