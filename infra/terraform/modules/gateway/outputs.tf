output "alb_dns_name" {
  description = "DNS name of the ALB (HTTPS: /mcp, /ws, /health, /healthz, /readyz)."
  value       = aws_lb.http.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone of the ALB, for alias records."
  value       = aws_lb.http.zone_id
}

output "alb_arn" {
  description = "ARN of the ALB."
  value       = aws_lb.http.arn
}

output "nlb_dns_name" {
  description = "DNS name of the NLB (MCPB/TCP on 8445)."
  value       = aws_lb.tcp.dns_name
}

output "nlb_zone_id" {
  description = "Hosted zone of the NLB, for alias records."
  value       = aws_lb.tcp.zone_id
}

output "nlb_arn" {
  description = "ARN of the NLB."
  value       = aws_lb.tcp.arn
}

output "mcp_url" {
  description = "Streamable HTTP endpoint."
  value       = "https://${aws_lb.http.dns_name}/mcp"
}

output "websocket_url" {
  description = "WebSocket endpoint (subprotocol mcp)."
  value       = "wss://${aws_lb.http.dns_name}/ws"
}

output "tcp_endpoint" {
  description = "MCPB/TCP endpoint (host:port)."
  value       = "${aws_lb.tcp.dns_name}:8445"
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.service.cluster.name
}

output "service_name" {
  description = "ECS service."
  value       = module.service.service.name
}

output "task_definition_arn" {
  description = "Current task definition."
  value       = module.service.task_definition.arn
}

output "task_role_arn" {
  description = "Role of the running containers (remote-write to the workspace)."
  value       = module.service.task_role.arn
}

output "execution_role_arn" {
  description = "Role ECS uses to pull images, write logs and read secrets."
  value       = module.service.execution_role.arn
}

output "tasks_security_group_id" {
  description = "Security group of the tasks (allow it into Redis and backends)."
  value       = aws_security_group.tasks.id
}

output "log_group_name" {
  description = "CloudWatch log group of the three containers (stream prefixes gateway/, bridge/, collector/)."
  value       = module.service.log_group.name
}

output "container_definitions" {
  description = "Container definitions (JSON) of the task: gateway, bridge and Collector. Secrets appear as ARNs only."
  value       = module.service.task_definition.container_definitions
}
