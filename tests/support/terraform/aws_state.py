"""Read back, through the AWS APIs (boto3 against moto), what an applied root created.

The snapshot is plain data (dicts, lists, decoded JSON/YAML documents) so that the tests compare
documents, never their string encodings. Only resources whose names start with `prefix` count.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import yaml

from tests.support.terraform.moto import MotoServer


def _decode_policy(document: Any) -> Any:
    if isinstance(document, str):
        return json.loads(unquote(document))
    return document


def snapshot(moto: MotoServer, prefix: str) -> dict[str, Any]:
    """Everything named `prefix...` that the roots create in the services moto serves."""
    elbv2 = moto.client("elbv2")
    ecs = moto.client("ecs")
    amp = moto.client("amp")
    iam = moto.client("iam")
    logs = moto.client("logs")
    ec2 = moto.client("ec2")

    load_balancers: dict[str, Any] = {}
    for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
        if not lb["LoadBalancerName"].startswith(prefix):
            continue
        arn = lb["LoadBalancerArn"]
        attributes = {a["Key"]: a["Value"] for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}
        listeners = {}
        for listener in elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]:
            listeners[listener["Port"]] = {
                "protocol": listener["Protocol"],
                "certificates": [c["CertificateArn"] for c in listener.get("Certificates", [])],
                "ssl_policy": listener.get("SslPolicy"),
                "actions": [a["Type"] for a in listener["DefaultActions"]],
                "alpn": listener.get("AlpnPolicy", []),
            }
        load_balancers[lb["LoadBalancerName"]] = {
            "type": lb["Type"],
            "scheme": lb.get("Scheme"),
            "attributes": attributes,
            "listeners": listeners,
        }

    target_groups = {
        tg["TargetGroupName"]: {
            "port": tg["Port"],
            "protocol": tg["Protocol"],
            "target_type": tg["TargetType"],
            "health_protocol": tg.get("HealthCheckProtocol"),
            "health_port": tg.get("HealthCheckPort"),
            "health_path": tg.get("HealthCheckPath"),
        }
        for tg in elbv2.describe_target_groups()["TargetGroups"]
        if tg["TargetGroupName"].startswith(prefix)
    }

    clusters = [
        c["clusterName"]
        for c in ecs.describe_clusters(clusters=ecs.list_clusters()["clusterArns"])["clusters"]
        if c["clusterName"].startswith(prefix) and c["status"] == "ACTIVE"
    ]
    services: dict[str, Any] = {}
    for cluster in clusters:
        arns = ecs.list_services(cluster=cluster)["serviceArns"]
        if not arns:
            continue
        for service in ecs.describe_services(cluster=cluster, services=arns)["services"]:
            if service["status"] != "ACTIVE":
                continue
            task_definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
            services[service["serviceName"]] = {
                "cluster": cluster,
                "load_balancers": sorted((lb["containerName"], lb["containerPort"]) for lb in service.get("loadBalancers", [])),
                "subnets": sorted(service["networkConfiguration"]["awsvpcConfiguration"]["subnets"]),
                "assign_public_ip": service["networkConfiguration"]["awsvpcConfiguration"].get("assignPublicIp"),
                "task_role": task_definition.get("taskRoleArn"),
                "containers": {c["name"]: c for c in task_definition["containerDefinitions"]},
            }

    workspaces: dict[str, Any] = {}
    for ws in amp.list_workspaces()["workspaces"]:
        if not ws.get("alias", "").startswith(prefix) or ws["status"]["statusCode"] == "DELETING":
            continue
        namespaces = {}
        for ns in amp.list_rule_groups_namespaces(workspaceId=ws["workspaceId"])["ruleGroupsNamespaces"]:
            described = amp.describe_rule_groups_namespace(workspaceId=ws["workspaceId"], name=ns["name"])
            data = described["ruleGroupsNamespace"]["data"]
            namespaces[ns["name"]] = yaml.safe_load(data.read() if hasattr(data, "read") else data)
        workspaces[ws["alias"]] = {"arn": ws["arn"], "rule_groups": namespaces}

    roles: dict[str, Any] = {}
    for role in iam.list_roles()["Roles"]:
        if not role["RoleName"].startswith(prefix):
            continue
        policies = {
            name: _decode_policy(iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)["PolicyDocument"])
            for name in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
        }
        roles[role["RoleName"]] = {
            "trust": _decode_policy(role["AssumeRolePolicyDocument"]),
            "policies": policies,
        }

    log_groups = {
        g["logGroupName"]: g.get("retentionInDays") for g in logs.describe_log_groups()["logGroups"] if prefix in g["logGroupName"]
    }

    vpcs = [v["VpcId"] for v in ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [prefix]}])["Vpcs"]]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": vpcs}])["Subnets"] if vpcs else []
    nat_gateways = (
        [
            n
            for n in ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": vpcs}])["NatGateways"]
            if n["State"] not in ("deleted", "deleting")
        ]
        if vpcs
        else []
    )

    return {
        "load_balancers": load_balancers,
        "target_groups": target_groups,
        "clusters": clusters,
        "services": services,
        "workspaces": workspaces,
        "roles": roles,
        "log_groups": log_groups,
        "vpcs": vpcs,
        "subnets": sorted((s["CidrBlock"], s["AvailabilityZone"]) for s in subnets),
        "nat_gateways": len(nat_gateways),
    }


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def container_secrets(container: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["valueFrom"] for s in container.get("secrets", [])}
