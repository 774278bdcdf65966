output "workspace_id" {
  description = "Id of the workspace."
  value       = aws_prometheus_workspace.this.id
}

output "workspace_arn" {
  description = "ARN of the workspace (scope of remote-write and query permissions)."
  value       = aws_prometheus_workspace.this.arn
}

output "prometheus_endpoint" {
  description = "Prometheus-compatible base URL of the workspace (query APIs live under api/v1/)."
  value       = aws_prometheus_workspace.this.prometheus_endpoint
}

output "remote_write_url" {
  description = "Remote-write URL for Collectors (SigV4 signed, service aps)."
  value       = "${aws_prometheus_workspace.this.prometheus_endpoint}api/v1/remote_write"
}

output "query_url" {
  description = "Instant query URL."
  value       = "${aws_prometheus_workspace.this.prometheus_endpoint}api/v1/query"
}

output "region" {
  description = "Region of the workspace (for SigV4 signing)."
  value       = data.aws_region.current.name
}

output "rule_group_namespaces" {
  description = "Loaded rule groups namespaces: name => ARN."
  value       = { for k, v in aws_prometheus_rule_group_namespace.this : k => v.arn }
}

output "alerts_topic_arn" {
  description = "SNS topic that receives the workspace's alerts (null when alerting is off or the definition is custom)."
  value       = var.create_alertmanager_definition ? local.topic_arn : null
}

output "alerts_kms_key_arn" {
  description = "KMS key of the alerts topic (whoever publishes to the topic needs kms:GenerateDataKey* on it). Null when no topic was created."
  value       = local.create_topic ? local.topic_key_arn : null
}
