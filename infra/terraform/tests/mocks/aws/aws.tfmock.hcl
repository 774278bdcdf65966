# Shared defaults for `mock_provider "aws"` in every module and root test.
#
# A mocked provider invents random strings for computed attributes. Anything that is
# parsed (ARNs split on ":", endpoints turned into URLs) or asserted on needs a
# realistic value, so each resource and data source the configurations use gets one
# here. Tests that need a specific value use `override_resource`/`override_data`.

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
    arn        = "arn:aws:iam::123456789012:user/terraform-test"
    user_id    = "AIDAMOCKUSER"
  }
}

mock_data "aws_partition" {
  defaults = {
    partition          = "aws"
    dns_suffix         = "amazonaws.com"
    reverse_dns_prefix = "com.amazonaws"
  }
}

mock_data "aws_region" {
  defaults = {
    name        = "us-east-1"
    id          = "us-east-1"
    description = "US East (N. Virginia)"
    endpoint    = "ec2.us-east-1.amazonaws.com"
  }
}

mock_data "aws_availability_zones" {
  defaults = {
    names    = ["us-east-1a", "us-east-1b", "us-east-1c"]
    zone_ids = ["use1-az1", "use1-az2", "use1-az4"]
  }
}

mock_data "aws_vpc" {
  defaults = {
    arn        = "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-0byo0000000000000"
    cidr_block = "10.50.0.0/16"
  }
}

mock_data "aws_secretsmanager_random_password" {
  defaults = {
    random_password = "mock-redis-auth-token-0123456789abcdefABCDEF"
  }
}

mock_data "aws_secretsmanager_secret_version" {
  defaults = {
    arn           = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mock-secret-AbCdEf"
    secret_string = "mock-redis-auth-token-0123456789abcdefABCDEF"
  }
}

mock_resource "aws_vpc" {
  defaults = {
    id         = "vpc-0mock000000000000"
    arn        = "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-0mock000000000000"
    cidr_block = "10.0.0.0/16"
  }
}

mock_resource "aws_eip" {
  defaults = {
    public_ip = "198.51.100.10"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/mock-role"
  }
}

mock_resource "aws_iam_policy" {
  defaults = {
    arn = "arn:aws:iam::123456789012:policy/mock-policy"
  }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = {
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:/mock/log-group"
  }
}

mock_resource "aws_secretsmanager_secret" {
  defaults = {
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mock-secret-AbCdEf"
    id  = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mock-secret-AbCdEf"
  }
}

mock_resource "aws_secretsmanager_secret_version" {
  defaults = {
    arn       = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mock-secret-AbCdEf"
    secret_id = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mock-secret-AbCdEf"
  }
}

mock_resource "aws_kms_key" {
  defaults = {
    arn    = "arn:aws:kms:us-east-1:123456789012:key/00000000-mock-key0-0000-000000000000"
    key_id = "00000000-mock-key0-0000-000000000000"
  }
}

mock_resource "aws_sns_topic" {
  defaults = {
    arn = "arn:aws:sns:us-east-1:123456789012:mock-alerts"
  }
}

mock_resource "aws_prometheus_workspace" {
  defaults = {
    id                  = "ws-mock0000-0000-0000-0000-000000000000"
    arn                 = "arn:aws:aps:us-east-1:123456789012:workspace/ws-mock0000-0000-0000-0000-000000000000"
    prometheus_endpoint = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-mock0000-0000-0000-0000-000000000000/"
  }
}

mock_resource "aws_prometheus_rule_group_namespace" {
  defaults = {
    arn = "arn:aws:aps:us-east-1:123456789012:rulegroupsnamespace/ws-mock0000-0000-0000-0000-000000000000/mock"
  }
}

mock_resource "aws_grafana_workspace" {
  defaults = {
    id       = "g-mock000000"
    arn      = "arn:aws:grafana:us-east-1:123456789012:/workspaces/g-mock000000"
    endpoint = "g-mock000000.grafana-workspace.us-east-1.amazonaws.com"
  }
}

mock_resource "aws_grafana_workspace_service_account" {
  defaults = {
    service_account_id = "7"
  }
}

mock_resource "aws_grafana_workspace_service_account_token" {
  defaults = {
    key = "glsa_mockServiceAccountToken_0000"
  }
}

mock_resource "aws_elasticache_replication_group" {
  defaults = {
    arn                      = "arn:aws:elasticache:us-east-1:123456789012:replicationgroup:mock"
    primary_endpoint_address = "master.mock.abcdef.use1.cache.amazonaws.com"
    reader_endpoint_address  = "replica.mock.abcdef.use1.cache.amazonaws.com"
  }
}

mock_resource "aws_ecs_cluster" {
  defaults = {
    arn = "arn:aws:ecs:us-east-1:123456789012:cluster/mock"
  }
}

mock_resource "aws_ecs_task_definition" {
  defaults = {
    arn                  = "arn:aws:ecs:us-east-1:123456789012:task-definition/mock:1"
    arn_without_revision = "arn:aws:ecs:us-east-1:123456789012:task-definition/mock"
  }
}

mock_resource "aws_ecs_service" {
  defaults = {
    id = "arn:aws:ecs:us-east-1:123456789012:service/mock/mock"
  }
}

mock_resource "aws_lb" {
  defaults = {
    arn        = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/mock/0123456789abcdef"
    arn_suffix = "app/mock/0123456789abcdef"
    dns_name   = "mock-0123456789.us-east-1.elb.amazonaws.com"
    zone_id    = "Z35SXDOTRQ7X7K"
  }
}

mock_resource "aws_lb_target_group" {
  defaults = {
    arn        = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mock/0123456789abcdef"
    arn_suffix = "targetgroup/mock/0123456789abcdef"
  }
}

mock_resource "aws_lb_listener" {
  defaults = {
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/mock/0123456789abcdef/0123456789abcdef"
  }
}

mock_resource "aws_appautoscaling_policy" {
  defaults = {
    arn = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:mock:resource/ecs/service/mock/mock:policyName/mock"
  }
}

mock_resource "aws_appautoscaling_target" {
  defaults = {
    arn = "arn:aws:application-autoscaling:us-east-1:123456789012:scalable-target/mock"
  }
}
