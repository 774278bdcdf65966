output "workspace_id" {
  description = "Id of the Grafana workspace."
  value       = aws_grafana_workspace.this.id
}

output "workspace_arn" {
  description = "ARN of the Grafana workspace."
  value       = aws_grafana_workspace.this.arn
}

output "url" {
  description = "URL of the Grafana workspace."
  value       = "https://${aws_grafana_workspace.this.endpoint}"
}

output "role_arn" {
  description = "IAM role Grafana uses to query the Prometheus workspaces."
  value       = aws_iam_role.this.arn
}

output "service_account_token" {
  description = "Token of the dashboards publisher's service account (Authorization: Bearer). Null when not created."
  value       = var.create_service_account_token ? aws_grafana_workspace_service_account_token.publisher[0].key : null
  sensitive   = true
}

output "service_account_token_expires_at" {
  description = "When the publisher token expires."
  value       = var.create_service_account_token ? aws_grafana_workspace_service_account_token.publisher[0].expires_at : null
}

output "datasources" {
  description = "Grafana data source definitions (HTTP API payloads) of the Prometheus workspaces, for `mcp-gateway dashboards publish --datasources`."
  value       = local.datasources
}
