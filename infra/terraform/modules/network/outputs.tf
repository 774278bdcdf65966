output "vpc_id" {
  description = "Id of the VPC (created or brought)."
  value       = var.create_vpc ? aws_vpc.this[0].id : var.vpc_id
}

output "vpc_cidr_block" {
  description = "CIDR block of the VPC."
  value       = var.create_vpc ? aws_vpc.this[0].cidr_block : data.aws_vpc.existing[0].cidr_block
}

output "azs" {
  description = "Availability zones of the created subnets (empty when the VPC is brought)."
  value       = local.azs
}

output "public_subnet_ids" {
  description = "Public subnet ids, for the load balancers."
  value       = var.create_vpc ? aws_subnet.public[*].id : var.public_subnet_ids
}

output "private_subnet_ids" {
  description = "Private subnet ids, for the tasks and Redis."
  value       = var.create_vpc ? aws_subnet.private[*].id : var.private_subnet_ids
}

output "nat_gateway_ids" {
  description = "Ids of the created NAT gateways."
  value       = aws_nat_gateway.this[*].id
}

output "egress_cidr_blocks" {
  description = "Public addresses (as /32 CIDRs) that traffic from the private subnets leaves by; the federation allows these."
  value       = var.create_vpc ? [for ip in aws_eip.nat[*].public_ip : "${ip}/32"] : var.existing_egress_cidr_blocks
}
