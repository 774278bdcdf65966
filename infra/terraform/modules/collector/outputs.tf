output "endpoint" {
  description = "OTLP/gRPC endpoint (host:port, TLS) regions forward to: their federation_endpoint. The certificate must match the host: use a DNS name (see the global root's dns) in production."
  value       = "${aws_lb.this.dns_name}:${var.otlp_grpc_port}"
}

output "nlb_dns_name" {
  description = "DNS name of the NLB (point an alias record matching the certificate at it)."
  value       = aws_lb.this.dns_name
}

output "nlb_zone_id" {
  description = "Hosted zone of the NLB, for alias records."
  value       = aws_lb.this.zone_id
}

output "port" {
  description = "Port of the OTLP/gRPC listener."
  value       = var.otlp_grpc_port
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.service.cluster.name
}

output "service_name" {
  description = "ECS service."
  value       = module.service.service.name
}

output "task_role_arn" {
  description = "Role of the Collector tasks (remote-write to the global workspace)."
  value       = module.service.task_role.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the Collector."
  value       = module.service.log_group.name
}
