output "federation_endpoint" {
  description = "OTLP/gRPC endpoint (host:4317, TLS) of the federation Collector: every region's federation_endpoint."
  value       = "${local.federation_host}:${module.collector.port}"
}

output "federation_token_secret_arn" {
  description = "Secret with the federation bearer token (in this region)."
  value       = local.token_secret_arn
}

output "federation_token_secret_arns" {
  description = "The token secret's ARN in this region and in every replica region: region => ARN; give each region its own as federation_token_secret_arn."
  value = merge(
    { (var.region) = local.token_secret_arn },
    { for r in local.replica_regions : r => replace(local.token_secret_arn, ":${var.region}:", ":${r}:") },
  )
}

output "grafana_url" {
  description = "URL of the Grafana that views every region (null when enable_grafana is false)."
  value       = var.enable_grafana ? module.grafana[0].url : null
}

output "grafana_token" {
  description = "Service-account token for `mcp-gateway dashboards publish` (sensitive)."
  value       = var.enable_grafana ? module.grafana[0].service_account_token : null
  sensitive   = true
}

output "grafana_datasources" {
  description = "Grafana data sources (mcp-prometheus-global, the default, and mcp-prometheus-<region> for each region) for `mcp-gateway dashboards publish --datasources`."
  value       = var.enable_grafana ? module.grafana[0].datasources : []
}

output "prometheus_workspace_id" {
  description = "Id of the global workspace."
  value       = module.prometheus.workspace_id
}

output "prometheus_workspace" {
  description = "The global workspace: { arn, endpoint, region }."
  value = {
    arn      = module.prometheus.workspace_arn
    endpoint = module.prometheus.prometheus_endpoint
    region   = module.prometheus.region
  }
}

output "prometheus_rule_namespaces" {
  description = "Rule groups namespaces loaded into the global workspace."
  value       = sort(keys(module.prometheus.rule_group_namespaces))

  precondition {
    condition     = !var.load_rules || length(local.rule_groups) > 0
    error_message = "load_rules is on but no rule files were found in ${local.rules_dir}."
  }
}

output "alerts_topic_arn" {
  description = "SNS topic of the global alerts."
  value       = module.prometheus.alerts_topic_arn
}

output "collector_cluster_name" {
  description = "ECS cluster of the federation Collector."
  value       = module.collector.cluster_name
}

output "collector_service_name" {
  description = "ECS service of the federation Collector."
  value       = module.collector.service_name
}

output "collector_log_group_name" {
  description = "Log group of the federation Collector."
  value       = module.collector.log_group_name
}
