# Whole resources, so that callers (and their `terraform test` assertions, which cannot
# address a child module's resources) see every attribute.

output "log_group" {
  description = "The CloudWatch log group (/ecs/<name>) of every container."
  value       = aws_cloudwatch_log_group.this
}

output "execution_role" {
  description = "The role ECS uses to pull images, write logs and read secrets."
  value       = aws_iam_role.execution
}

output "execution_role_policy" {
  description = "The execution role's inline policy."
  value       = aws_iam_role_policy.execution
}

output "task_role" {
  description = "The role of the running containers."
  value       = aws_iam_role.task
}

output "task_role_policy" {
  description = "The task role's inline policy."
  value       = aws_iam_role_policy.task
}

output "cluster" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.this
}

output "task_definition" {
  description = "The task definition (container_definitions holds secrets as ARNs only)."
  value       = aws_ecs_task_definition.this
}

output "service" {
  description = "The ECS service."
  value       = aws_ecs_service.this
}

output "autoscaling_target" {
  description = "The Application Auto Scaling target: a list of one, empty without enable_autoscaling (add further scaling policies to it)."
  value       = aws_appautoscaling_target.this
}

output "cpu_scaling_policy" {
  description = "The CPU target tracking policy: a list of one, empty without enable_autoscaling."
  value       = aws_appautoscaling_policy.cpu
}
