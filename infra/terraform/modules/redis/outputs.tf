output "replication_group_id" {
  description = "Id of the replication group."
  value       = aws_elasticache_replication_group.this.id
}

output "replication_group_arn" {
  description = "ARN of the replication group."
  value       = aws_elasticache_replication_group.this.arn
}

output "primary_endpoint_address" {
  description = "Host name of the primary (follows failovers)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "reader_endpoint_address" {
  description = "Host name that spreads reads over the replicas."
  value       = aws_elasticache_replication_group.this.reader_endpoint_address
}

output "port" {
  description = "Redis port."
  value       = var.port
}

output "url" {
  description = "TLS connection URL without credentials (rediss://host:port); the password comes from auth_token_secret_arn."
  value       = "rediss://${aws_elasticache_replication_group.this.primary_endpoint_address}:${var.port}"
}

output "auth_token_secret_arn" {
  description = "Secrets Manager secret holding the AUTH token; give it to the gateway as MCP_GATEWAY_REDIS_PASSWORD."
  value       = local.secret_arn
}

output "security_group_id" {
  description = "Security group of the replication group."
  value       = aws_security_group.this.id
}
