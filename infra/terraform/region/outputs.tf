output "mcp_url" {
  description = "Streamable HTTP endpoint of the gateway."
  value       = "https://${local.http_host}/mcp"
}

output "websocket_url" {
  description = "WebSocket endpoint of the gateway (subprotocol mcp)."
  value       = "wss://${local.http_host}/ws"
}

output "tcp_endpoint" {
  description = "MCPB/TCP endpoint of the TCP bridge (host:port)."
  value       = "${local.tcp_host}:8445"
}

output "alb_dns_name" {
  description = "DNS name of the ALB."
  value       = module.gateway.alb_dns_name
}

output "nlb_dns_name" {
  description = "DNS name of the NLB."
  value       = module.gateway.nlb_dns_name
}

output "grafana_url" {
  description = "URL of the region's Grafana (null when enable_grafana is false)."
  value       = var.enable_grafana ? module.grafana[0].url : null
}

output "grafana_token" {
  description = "Service-account token for `mcp-gateway dashboards publish` (sensitive; `terraform output -raw grafana_token`)."
  value       = var.enable_grafana ? module.grafana[0].service_account_token : null
  sensitive   = true
}

output "grafana_datasources" {
  description = "Grafana data sources for `mcp-gateway dashboards publish --datasources` (`terraform output -json grafana_datasources`)."
  value       = var.enable_grafana ? module.grafana[0].datasources : []
}

output "prometheus_workspace_id" {
  description = "Id of the region's Amazon Managed Prometheus workspace."
  value       = module.prometheus.workspace_id
}

output "prometheus_workspace" {
  description = "The region's workspace as the global root's region_workspaces expects it: { arn, endpoint, region }."
  value = {
    arn      = module.prometheus.workspace_arn
    endpoint = module.prometheus.prometheus_endpoint
    region   = module.prometheus.region
  }
}

output "prometheus_remote_write_url" {
  description = "Remote-write URL of the region's workspace."
  value       = module.prometheus.remote_write_url
}

output "prometheus_rule_namespaces" {
  description = "Rule groups namespaces loaded from otel/prometheus/rules."
  value       = sort(keys(module.prometheus.rule_group_namespaces))

  precondition {
    condition     = length(local.rule_groups) > 0
    error_message = "No rule files found in ${local.rules_dir}: the region would run without alerts."
  }
}

output "alerts_topic_arn" {
  description = "SNS topic of the region's alerts (subscribe on-call to it)."
  value       = module.prometheus.alerts_topic_arn
}

output "redis_primary_endpoint" {
  description = "Primary endpoint of the Redis replication group."
  value       = var.enable_redis ? module.redis[0].primary_endpoint_address : null
}

output "redis_auth_secret_arn" {
  description = "Secret with the Redis AUTH token (rotate here)."
  value       = local.redis_secret_arn
}

output "egress_cidr_blocks" {
  description = "Addresses this region's Collector sends from; add them to the global root's allowed_cidr_blocks."
  value       = module.network.egress_cidr_blocks
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.gateway.cluster_name
}

output "service_name" {
  description = "ECS service."
  value       = module.gateway.service_name
}

output "log_group_name" {
  description = "CloudWatch log group of the gateway, bridge and Collector."
  value       = module.gateway.log_group_name
}
