# terraform test for the network module, with the shared mocked AWS provider.

mock_provider "aws" {
  source = "../../tests/mocks/aws"
}

variables {
  name = "mcp-test"
}

run "creates_vpc_across_two_zones" {
  command = apply

  assert {
    condition     = aws_vpc.this[0].cidr_block == "10.40.0.0/16" && aws_vpc.this[0].enable_dns_hostnames
    error_message = "the VPC must use vpc_cidr and resolve DNS host names (ECS, Secrets Manager, ElastiCache endpoints)"
  }

  assert {
    condition     = [for s in aws_subnet.public : s.cidr_block] == ["10.40.0.0/20", "10.40.16.0/20"]
    error_message = "public subnets must be the first /20s of the VPC, one per zone"
  }

  assert {
    condition     = [for s in aws_subnet.private : s.cidr_block] == ["10.40.128.0/20", "10.40.144.0/20"]
    error_message = "private subnets must be /20s from index 8, one per zone"
  }

  assert {
    condition     = [for s in aws_subnet.private : s.availability_zone] == ["us-east-1a", "us-east-1b"]
    error_message = "subnets must spread over the first two available zones"
  }

  assert {
    condition     = alltrue([for s in aws_subnet.public : !s.map_public_ip_on_launch])
    error_message = "nothing in this design needs public IPs assigned on launch"
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 2 && length(aws_route.private_nat) == 2
    error_message = "each zone gets its own NAT gateway and default route by default"
  }

  assert {
    condition     = output.egress_cidr_blocks == tolist(["198.51.100.10/32", "198.51.100.10/32"])
    error_message = "egress CIDRs must be the NAT gateways' addresses as /32s"
  }

  assert {
    condition     = length(aws_default_security_group.this[0].ingress) == 0 && length(aws_default_security_group.this[0].egress) == 0
    error_message = "the default security group must be closed"
  }
}

run "single_nat_gateway_shares_one_gateway" {
  command = plan

  variables {
    single_nat_gateway = true
    azs                = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 1 && length(aws_route.private_nat) == 3
    error_message = "one NAT gateway must serve the private route tables of all three zones"
  }
}

run "bring_your_own_vpc_creates_nothing" {
  command = apply

  variables {
    create_vpc                  = false
    vpc_id                      = "vpc-0byo0000000000000"
    public_subnet_ids           = ["subnet-pub-a", "subnet-pub-b"]
    private_subnet_ids          = ["subnet-priv-a", "subnet-priv-b"]
    existing_egress_cidr_blocks = ["203.0.113.7/32"]
  }

  assert {
    condition     = length(aws_vpc.this) == 0 && length(aws_subnet.public) == 0 && length(aws_nat_gateway.this) == 0
    error_message = "bringing a VPC must not create network resources"
  }

  assert {
    condition     = output.vpc_id == "vpc-0byo0000000000000" && output.private_subnet_ids == tolist(["subnet-priv-a", "subnet-priv-b"])
    error_message = "outputs must pass the brought VPC through"
  }

  assert {
    condition     = output.vpc_cidr_block == "10.50.0.0/16"
    error_message = "the CIDR of a brought VPC comes from the aws_vpc data source"
  }
}

run "bring_your_own_vpc_requires_subnets" {
  command = plan

  variables {
    create_vpc = false
    vpc_id     = "vpc-0byo0000000000000"
  }

  expect_failures = [var.public_subnet_ids, var.private_subnet_ids]
}

run "rejects_single_zone" {
  command = plan

  variables {
    az_count = 1
  }

  expect_failures = [var.az_count]
}
