# terraform test for the redis module, with the shared mocked AWS provider.

mock_provider "aws" {
  source = "../../tests/mocks/aws"
}

variables {
  name       = "mcp-test"
  vpc_id     = "vpc-0mock000000000000"
  subnet_ids = ["subnet-a", "subnet-b"]
  allowed_security_group_ids = {
    gateway = "sg-0gateway00000000"
  }
}

run "encrypted_multi_az_redis_7" {
  command = apply

  assert {
    condition     = aws_elasticache_replication_group.this.engine == "redis" && startswith(aws_elasticache_replication_group.this.engine_version, "7.")
    error_message = "the replication group must run Redis 7"
  }

  assert {
    condition     = aws_elasticache_replication_group.this.transit_encryption_enabled && aws_elasticache_replication_group.this.transit_encryption_mode == "required"
    error_message = "TLS in transit must be on and required (no plaintext clients)"
  }

  assert {
    condition     = aws_elasticache_replication_group.this.at_rest_encryption_enabled
    error_message = "encryption at rest must be on"
  }

  assert {
    condition     = aws_elasticache_replication_group.this.automatic_failover_enabled && aws_elasticache_replication_group.this.multi_az_enabled && aws_elasticache_replication_group.this.num_cache_clusters >= 2
    error_message = "multi-AZ with automatic failover needs at least a primary and a replica"
  }

  assert {
    condition     = aws_elasticache_replication_group.this.port == 6379 && aws_elasticache_subnet_group.this.subnet_ids == toset(["subnet-a", "subnet-b"])
    error_message = "port 6379 in the given private subnets"
  }

  assert {
    condition     = output.url == "rediss://master.mock.abcdef.use1.cache.amazonaws.com:6379"
    error_message = "the URL must use the rediss:// scheme and carry no credentials"
  }
}

run "auth_token_comes_from_secrets_manager" {
  command = apply

  assert {
    condition     = length(aws_secretsmanager_secret.auth) == 1 && output.auth_token_secret_arn == aws_secretsmanager_secret.auth[0].arn
    error_message = "without auth_token_secret_arn the module creates the secret and outputs its ARN"
  }

  assert {
    condition     = aws_secretsmanager_secret_version.auth[0].secret_string == data.aws_secretsmanager_random_password.auth[0].random_password
    error_message = "the created secret holds the generated token"
  }

  assert {
    condition     = data.aws_secretsmanager_random_password.auth[0].password_length >= 16 && data.aws_secretsmanager_random_password.auth[0].exclude_punctuation
    error_message = "ElastiCache tokens must be at least 16 characters without / \" @"
  }

  assert {
    condition     = aws_elasticache_replication_group.this.auth_token == data.aws_secretsmanager_secret_version.auth.secret_string
    error_message = "the replication group's AUTH token must be read from Secrets Manager"
  }

  assert {
    condition     = data.aws_secretsmanager_secret_version.auth.secret_id == aws_secretsmanager_secret.auth[0].arn
    error_message = "the token is read back from the module's own secret"
  }
}

run "existing_secret_is_used_as_is" {
  command = apply

  variables {
    auth_token_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:byo-redis-token-XyZ123"
  }

  assert {
    condition     = length(aws_secretsmanager_secret.auth) == 0 && length(data.aws_secretsmanager_random_password.auth) == 0
    error_message = "an existing secret must not be duplicated"
  }

  assert {
    condition     = data.aws_secretsmanager_secret_version.auth.secret_id == var.auth_token_secret_arn && output.auth_token_secret_arn == var.auth_token_secret_arn
    error_message = "the token must come from the given secret"
  }
}

run "only_allowed_groups_reach_redis" {
  command = apply

  variables {
    allowed_cidr_blocks = ["10.0.200.0/24"]
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.from_security_groups["gateway"].referenced_security_group_id == "sg-0gateway00000000"
    error_message = "the gateway's security group must be allowed"
  }

  assert {
    condition = alltrue([
      for r in concat(values(aws_vpc_security_group_ingress_rule.from_security_groups), values(aws_vpc_security_group_ingress_rule.from_cidrs)) :
      r.from_port == 6379 && r.to_port == 6379 && r.ip_protocol == "tcp"
    ])
    error_message = "ingress must be TCP 6379 only"
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.from_cidrs["10.0.200.0/24"].cidr_ipv4 == "10.0.200.0/24"
    error_message = "allowed CIDR blocks get their own rule"
  }
}

run "slow_log_goes_to_cloudwatch" {
  command = apply

  assert {
    condition = [for d in aws_elasticache_replication_group.this.log_delivery_configuration : [d.destination_type, d.log_type, d.destination]] == [
      ["cloudwatch-logs", "slow-log", "/aws/elasticache/mcp-test-redis/slow-log"]
    ]
    error_message = "the slow log must be delivered to the module's log group"
  }
}

run "rejects_single_node" {
  command = plan

  variables {
    num_cache_clusters = 1
  }

  expect_failures = [var.num_cache_clusters]
}

run "rejects_redis_6" {
  command = plan

  variables {
    engine_version = "6.2"
  }

  expect_failures = [var.engine_version]
}
