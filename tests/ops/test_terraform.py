"""infra/terraform: formatting, validation, `terraform test` of every module and root (mocked
AWS provider), and `terraform apply` + `destroy` of both roots against moto, the local AWS
emulator.

terraform and the AWS provider must be installed on the machine (the provider in a local plugin
directory: `terraform init -plugin-dir=...`, never a download). When either is missing these
tests FAIL with a message saying so; they are never skipped.

The slow parts (one `terraform init` + `terraform test` per configuration, two applies against
moto that wait on the provider's load balancer pollers) run concurrently in a thread pool started
by the first test that needs them; each test then waits for its own job. Everything runs in
temporary copies of infra/terraform and otel/: nothing is written into the repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.terraform import (
    OTEL_DIR,
    REGION,
    TERRAFORM_DIR,
    MotoServer,
    Result,
    Terraform,
    TerraformError,
    TerraformUnavailable,
    copy_configurations,
    find_plugin_dir,
    find_terraform,
)
from tests.support.terraform.aws_state import container_env, container_secrets, snapshot

MODULES = ["network", "redis", "prometheus", "grafana", "ecs-service", "gateway", "collector"]
ROOTS = ["region", "global"]
CONFIGURATIONS = [f"modules/{m}" for m in MODULES] + ROOTS

pytestmark = pytest.mark.timeout(1500)


# ----------------------------------------------------------------------------------- jobs


@dataclass
class Outcome:
    """What a job did: every terraform command it ran, the data it gathered, or why it failed."""

    steps: list[Result] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def step(self, verb: str) -> Result:
        for result in self.steps:
            if result.args and result.args[0] == verb:
                return result
        raise AssertionError(f"the job never ran `terraform {verb}`:\n{self.error or ''}")

    def describe(self) -> str:
        return "\n\n".join([r.describe() for r in self.steps] + ([self.error] if self.error else []))


@dataclass
class Environment:
    terraform: Terraform
    copy: Path  # copy of infra/terraform shared by the module and root jobs
    scratch: Path


def _run_job(fn: Callable[[Outcome], None]) -> Outcome:
    outcome = Outcome()
    start = time.monotonic()
    try:
        fn(outcome)
    except TerraformError as err:
        outcome.error = str(err)
    except Exception:
        outcome.error = traceback.format_exc()
    outcome.seconds = time.monotonic() - start
    return outcome


def _terraform_test_job(env: Environment, configuration: str, example_tfvars: bool = False) -> Callable[[Outcome], None]:
    """init + (validate, for a root) + `terraform test` in the copy of one configuration; with
    `example_tfvars`, in a copy of its own where the runbook's first step was done
    (`cp terraform.tfvars.example terraform.tfvars`)."""

    def job(outcome: Outcome) -> None:
        name = ("tfvars-" if example_tfvars else "") + configuration.replace("/", "-")
        cwd = (copy_configurations(env.scratch / name) if example_tfvars else env.copy) / configuration
        if example_tfvars:
            shutil.copy(cwd / "terraform.tfvars.example", cwd / "terraform.tfvars")
        data_dir = env.scratch / "data" / name
        outcome.steps.append(env.terraform.init(cwd, data_dir))
        if configuration in ROOTS:
            outcome.steps.append(env.terraform.run(["validate", "-no-color"], cwd, data_dir, check=False))
        outcome.steps.append(env.terraform.run(["test", "-no-color"], cwd, data_dir, check=False, timeout=900))

    return job


def _moto_job(env: Environment, root: str) -> Callable[[Outcome], None]:
    """Apply the root against moto (unsupported services off), read back, destroy, read back."""

    def job(outcome: Outcome) -> None:
        workdir = env.scratch / f"moto-{root}"
        copy = copy_configurations(workdir)
        cwd = copy / root
        data_dir = workdir / "data"
        moto = MotoServer(workdir / "moto.log")
        try:
            variables, prefix = MOTO_SETUP[root](moto)
            outcome.data["variables"] = variables
            (cwd / "zz_moto_override.tf").write_text(moto.provider_override())
            (cwd / "moto.auto.tfvars.json").write_text(json.dumps(variables, indent=2))
            outcome.steps.append(env.terraform.init(cwd, data_dir, backend=True))
            apply = env.terraform.run(["apply", "-auto-approve", "-input=false", "-no-color"], cwd, data_dir, check=False)
            outcome.steps.append(apply)
            if apply.ok:
                outputs = env.terraform.run(["output", "-json", "-no-color"], cwd, data_dir)
                outcome.data["outputs"] = {k: v["value"] for k, v in json.loads(outputs.stdout).items()}
                outcome.data["applied"] = snapshot(moto, prefix)
                outcome.data["secrets"] = _secret_values(moto, outcome.data["outputs"])
            # Destroy whatever was created, even after a failed apply.
            destroy = env.terraform.run(["destroy", "-auto-approve", "-input=false", "-no-color"], cwd, data_dir, check=False)
            outcome.steps.append(destroy)
            outcome.data["destroyed"] = snapshot(moto, prefix)
            outcome.data["state_after_destroy"] = _state_resources(cwd)
        finally:
            outcome.data["moto_log"] = moto.log()
            moto.stop()

    return job


def _secret_values(moto: MotoServer, outputs: dict[str, Any]) -> dict[str, str]:
    arn = outputs.get("federation_token_secret_arn")
    if not arn:
        return {}
    return {"federation_token": moto.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]}


def _state_resources(cwd: Path) -> list[str]:
    state = cwd / "terraform.tfstate"
    if not state.is_file():
        return []
    return [f"{r.get('module', '')}.{r['type']}.{r['name']}" for r in json.loads(state.read_text()).get("resources", [])]


def _moto_region(moto: MotoServer) -> tuple[dict[str, Any], str]:
    acm = moto.client("acm")
    secrets = moto.client("secretsmanager")
    certificate = acm.request_certificate(DomainName="mcp.moto1.example.test")["CertificateArn"]
    federation = secrets.create_secret(Name="moto-federation-token", SecretString="federation-token-0123456789")["ARN"]
    logs = secrets.create_secret(Name="moto-logs", SecretString=json.dumps({"username": "mcp", "password": "p"}))["ARN"]
    return (
        {
            "name": "moto1",
            "region": REGION,
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp-gateway:1.0.0",
            "certificate_arn": certificate,
            "gateway_config_file": "gateway.example.yaml",
            "federation_endpoint": "otel.global.example.test:4317",
            "federation_token_secret_arn": federation,
            "jaeger_otlp_endpoint": "jaeger.moto1.example.test:4317",
            "logs_endpoint": "https://logs.moto1.example.test",
            "logs_credentials_secret_arn": logs,
            # What moto does not serve (see tests/support/terraform/moto.py).
            "enable_redis": False,
            "enable_grafana": False,
            "enable_alertmanager": False,
            "enable_autoscaling": False,
            "deletion_protection": False,
        },
        "mcp-moto1",
    )


def _moto_global(moto: MotoServer) -> tuple[dict[str, Any], str]:
    acm = moto.client("acm")
    secrets = moto.client("secretsmanager")
    certificate = acm.request_certificate(DomainName="otel.motog.example.test")["CertificateArn"]
    logs = secrets.create_secret(Name="moto-central-logs", SecretString=json.dumps({"username": "mcp", "password": "p"}))["ARN"]
    return (
        {
            "name": "motog",
            "region": REGION,
            "certificate_arn": certificate,
            "allowed_cidr_blocks": ["198.51.100.0/24"],
            "central_jaeger_otlp_endpoint": "jaeger.motog.example.test:4317",
            "central_logs_endpoint": "https://logs.motog.example.test",
            "central_logs_credentials_secret_arn": logs,
            "enable_grafana": False,
            "enable_alertmanager": False,
            "collector_enable_autoscaling": False,
            "deletion_protection": False,
        },
        "mcp-motog",
    )


MOTO_SETUP: dict[str, Callable[[MotoServer], tuple[dict[str, Any], str]]] = {
    "region": _moto_region,
    "global": _moto_global,
}


class Jobs:
    """The session's terraform jobs, started together, awaited one by one."""

    def __init__(self, env: Environment, wanted: list[str]) -> None:
        self.env = env
        # The moto jobs first: they mostly wait on the provider's pollers, leaving the CPUs
        # to the `terraform test` jobs that run beside them.
        ordered = sorted(set(wanted), key=lambda name: (not name.startswith("moto:"), CONFIG_ORDER.get(name, 99)))
        workers = max(1, min(len(ordered), (os.cpu_count() or 2) + 2))
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="terraform")
        self.futures: dict[str, Future[Outcome]] = {name: self.executor.submit(_run_job, self._make(name)) for name in ordered}

    def _make(self, name: str) -> Callable[[Outcome], None]:
        kind, _, target = name.partition(":")
        if kind == "moto":
            return _moto_job(self.env, target)
        return _terraform_test_job(self.env, target, example_tfvars=kind == "tfvars")

    def outcome(self, name: str) -> Outcome:
        if name not in self.futures:
            self.futures[name] = self.executor.submit(_run_job, self._make(name))
        return self.futures[name].result()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


# Heaviest `terraform test` suites first.
CONFIG_ORDER = {
    f"{kind}:{c}": i
    for i, (kind, c) in enumerate(
        [("test", "modules/gateway"), ("test", "region"), ("tfvars", "region"), ("test", "global"), ("tfvars", "global")]
        + [("test", f"modules/{m}") for m in ("collector", "ecs-service", "grafana", "redis", "prometheus", "network")]
    )
}


def _job_of(item: pytest.Item) -> str | None:
    if item.module is None or item.module.__name__ != __name__:
        return None
    params = getattr(item, "callspec", None)
    params = params.params if params else {}
    if "configuration" in params:
        return f"test:{params['configuration']}"
    if "example_root" in params:
        return f"tfvars:{params['example_root']}"
    if "root" in params:
        return f"test:{params['root']}" if item.originalname == "test_validate" else f"moto:{params['root']}"
    return None


# ------------------------------------------------------------------------------- fixtures


def _terraform_or_fail() -> tuple[Path, Path]:
    problem = ""
    try:
        return find_terraform(), find_plugin_dir()
    except TerraformUnavailable as err:
        problem = str(err)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    binary, plugin_dir = _terraform_or_fail()
    scratch = tmp_path_factory.mktemp("terraform")
    return Environment(Terraform(binary, plugin_dir, scratch), copy_configurations(scratch / "repo"), scratch)


@pytest.fixture(scope="session")
def jobs(request: pytest.FixtureRequest, environment: Environment) -> Iterator[Jobs]:
    wanted = [job for item in request.session.items if (job := _job_of(item))]
    runner = Jobs(environment, wanted)
    yield runner
    runner.close()


def _expect_ok(outcome: Outcome, verb: str) -> Result:
    if outcome.error:
        pytest.fail(outcome.describe(), pytrace=False)
    result = outcome.step(verb)
    if not result.ok:
        pytest.fail(result.describe(), pytrace=False)
    return result


def _rule_files() -> dict[str, Any]:
    rules = OTEL_DIR / "prometheus" / "rules"
    return {
        p.stem: yaml.safe_load(p.read_text())
        for p in sorted(rules.glob("*.yml"))
        if not (p.name.endswith("_test.yml") or p.name.endswith(".test.yml"))
    }


def _distribution_image() -> str:
    return yaml.safe_load((OTEL_DIR / "collector" / "distribution.yaml").read_text())["image"]


# ---------------------------------------------------------------------------------- tests


def test_terraform_and_the_aws_provider_are_installed() -> None:
    """Says loudly, as a failure, when the machine cannot run the rest of this file."""
    binary, plugin_dir = _terraform_or_fail()
    assert binary.is_file()
    assert any(plugin_dir.glob("registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws*"))


def test_the_roots_read_the_repository_otel_files() -> None:
    """The roots deploy otel/ as it is: the pinned Collector, its configs, the rule files."""
    for path in ("collector/distribution.yaml", "collector/region.yaml", "collector/federation.yaml"):
        assert (OTEL_DIR / path).is_file(), f"otel/{path} is missing: the roots cannot be applied"
    assert _rule_files(), "otel/prometheus/rules/*.yml is empty: the workspaces would have no rules"


def test_fmt(environment: Environment) -> None:
    result = environment.terraform.run(
        ["fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM_DIR)],
        TERRAFORM_DIR,
        environment.scratch / "data" / "fmt",
        check=False,
    )
    assert result.ok, f"run `terraform fmt -recursive infra/terraform`:\n{result.describe()}"


@pytest.mark.parametrize("root", ROOTS)
def test_validate(jobs: Jobs, root: str) -> None:
    _expect_ok(jobs.outcome(f"test:{root}"), "validate")


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_terraform_test(jobs: Jobs, configuration: str) -> None:
    """`terraform test` with the shared mocked provider (infra/terraform/tests/mocks/aws)."""
    result = _expect_ok(jobs.outcome(f"test:{configuration}"), "test")
    assert " 0 failed" in result.stdout and "Success!" in result.stdout, result.describe()


@pytest.mark.parametrize("example_root", ROOTS)
def test_terraform_test_passes_after_the_runbooks_copy_of_the_example_tfvars(jobs: Jobs, example_root: str) -> None:
    """`terraform test` also reads a root's terraform.tfvars, which the runbook's first step
    creates from the example: the tests must not depend on what an operator put there."""
    result = _expect_ok(jobs.outcome(f"tfvars:{example_root}"), "test")
    assert " 0 failed" in result.stdout and "Success!" in result.stdout, result.describe()


@pytest.mark.parametrize("pinned_root", ROOTS)
def test_root_tests_pin_every_variable_the_example_tfvars_sets(pinned_root: str) -> None:
    """What keeps the test above passing when the example grows a variable (fast, no terraform)."""
    directory = TERRAFORM_DIR / pinned_root
    example = set(re.findall(r"^([a-z_][a-z0-9_]*)\s*=", (directory / "terraform.tfvars.example").read_text(), re.M))
    tests = "".join(p.read_text() for p in (directory / "tests").glob("*.tftest.hcl"))
    block = re.search(r"^variables \{\n(.*?)^\}", tests, re.M | re.S)
    assert block, f"{pinned_root}: no file-level variables block in its tests"
    pinned = set(re.findall(r"^  ([a-z_][a-z0-9_]*)\s*=", block.group(1), re.M))
    assert example <= pinned, f"{pinned_root}/tests: pin {sorted(example - pinned)} in the file-level variables block"


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_layout_and_readme(configuration: str) -> None:
    """main/variables/outputs/versions.tf, a mocked `terraform test`, and a README listing every
    input and output."""
    directory = TERRAFORM_DIR / configuration
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (directory / name).is_file(), f"{configuration}/{name} is missing"
    tests = "".join(p.read_text() for p in (directory / "tests").glob("*.tftest.hcl"))
    assert 'mock_provider "aws"' in tests, f"{configuration} has no mocked terraform test"
    readme = (directory / "README.md").read_text()
    variables = re.findall(r'^variable "([^"]+)"', (directory / "variables.tf").read_text(), re.M)
    outputs = re.findall(r'^output "([^"]+)"', (directory / "outputs.tf").read_text(), re.M)
    undocumented = [name for name in variables + outputs if f"| `{name}` |" not in readme]
    assert not undocumented, f"{configuration}/README.md does not list: {', '.join(undocumented)}"
    variables_tf = (directory / "variables.tf").read_text()
    for name in variables:
        block = variables_tf.split(f'variable "{name}" {{', 1)[1].split("\n}\n", 1)[0]
        assert "description" in block and "type" in block, f"{configuration}: variable {name} needs a description and a type"


def test_gateway_example_configuration_is_valid() -> None:
    from app.cli import main

    assert main(["check-config", str(TERRAFORM_DIR / "region" / "gateway.example.yaml")]) == 0


@pytest.mark.parametrize("root", ["region"])
def test_moto_apply_and_destroy_region(jobs: Jobs, root: str) -> None:
    outcome = jobs.outcome(f"moto:{root}")
    try:
        _expect_ok(outcome, "apply")
        _check_region(outcome.data)
        _expect_ok(outcome, "destroy")
        _check_destroyed(outcome.data)
    except (AssertionError, pytest.fail.Exception):
        print(outcome.data.get("moto_log", ""))
        raise


@pytest.mark.parametrize("root", ["global"])
def test_moto_apply_and_destroy_global(jobs: Jobs, root: str) -> None:
    outcome = jobs.outcome(f"moto:{root}")
    try:
        _expect_ok(outcome, "apply")
        _check_global(outcome.data)
        _expect_ok(outcome, "destroy")
        _check_destroyed(outcome.data)
    except (AssertionError, pytest.fail.Exception):
        print(outcome.data.get("moto_log", ""))
        raise


# ------------------------------------------------------------------ checks against moto


def _check_region(data: dict[str, Any]) -> None:
    outputs, state, variables = data["outputs"], data["applied"], data["variables"]
    certificate = variables["certificate_arn"]

    assert outputs["mcp_url"] == f"https://{outputs['alb_dns_name']}/mcp"
    assert outputs["websocket_url"] == f"wss://{outputs['alb_dns_name']}/ws"
    assert outputs["tcp_endpoint"] == f"{outputs['nlb_dns_name']}:8445"
    assert outputs.get("grafana_url") is None  # behind enable_grafana (null outputs are left out)

    # Network: a VPC over two zones, public and private subnets, a NAT gateway per zone.
    assert len(state["vpcs"]) == 1
    assert len(state["subnets"]) == 4 and len({az for _, az in state["subnets"]}) == 2
    assert state["nat_gateways"] == 2

    # ALB for HTTP/WebSocket: TLS on 443 with the certificate, 80 redirects, long idle timeout.
    alb = state["load_balancers"]["mcp-moto1-http"]
    assert alb["type"] == "application"
    assert alb["listeners"][443]["protocol"] == "HTTPS" and alb["listeners"][443]["certificates"] == [certificate]
    assert alb["listeners"][443]["actions"] == ["forward"]
    assert alb["listeners"][80]["protocol"] == "HTTP" and alb["listeners"][80]["actions"] == ["redirect"]
    assert alb["attributes"]["idle_timeout.timeout_seconds"] == "3600"
    assert alb["attributes"]["routing.http.drop_invalid_header_fields.enabled"] == "true"

    # NLB for MCPB/TCP on 8445.
    nlb = state["load_balancers"]["mcp-moto1-tcp"]
    assert nlb["type"] == "network"
    assert {port: (listener["protocol"], listener["actions"]) for port, listener in nlb["listeners"].items()} == {
        8445: ("TCP", ["forward"])
    }

    assert state["target_groups"] == {
        "mcp-moto1-http": {
            "port": 8080,
            "protocol": "HTTP",
            "target_type": "ip",
            "health_protocol": "HTTP",
            "health_port": "traffic-port",
            "health_path": "/readyz",
        },
        "mcp-moto1-tcp": {
            "port": 8445,
            "protocol": "TCP",
            "target_type": "ip",
            "health_protocol": "HTTP",
            "health_port": "8080",
            "health_path": "/readyz",
        },
    }

    # ECS: the service behind both load balancers, three containers plus the config writer.
    service = state["services"]["mcp-moto1"]
    assert service["load_balancers"] == [("bridge", 8445), ("gateway", 8080)]
    assert service["assign_public_ip"] == "DISABLED"
    containers = service["containers"]
    assert set(containers) == {"gateway", "bridge", "collector", "gateway-config"}

    gateway = containers["gateway"]
    assert [p["containerPort"] for p in gateway["portMappings"]] == [8080, 9090]
    assert container_env(gateway)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
    assert container_env(gateway)["MCP_GATEWAY_CONFIG"] == "/etc/mcp-gateway/conf/gateway.yaml"
    assert yaml.safe_load(container_env(containers["gateway-config"])["MCP_GATEWAY_CONFIG_YAML"]) == yaml.safe_load(
        (TERRAFORM_DIR / "region" / "gateway.example.yaml").read_text()
    )

    bridge = containers["bridge"]
    assert bridge["entryPoint"] + bridge["command"] == [
        "mcp-gateway",
        "bridge",
        "--listen",
        "0.0.0.0:8445",
        "--gateway",
        "ws://127.0.0.1:8080/ws",
    ]

    collector = containers["collector"]
    assert collector["image"] == _distribution_image()
    assert collector["command"] == ["--config=env:OTEL_COLLECTOR_CONFIG"]
    env = container_env(collector)
    assert yaml.safe_load(env["OTEL_COLLECTOR_CONFIG"]) == yaml.safe_load((OTEL_DIR / "collector" / "region.yaml").read_text())
    assert env["AMP_REMOTE_WRITE_URL"] == outputs["prometheus_remote_write_url"]
    assert env["FEDERATION_OTLP_ENDPOINT"] == variables["federation_endpoint"]
    assert env["MCP_REGION"] == "moto1"
    # The sidecar scrapes its own task's gateway and bridge (region.yaml's prometheus receiver).
    assert (env["GATEWAY_METRICS_TARGET"], env["BRIDGE_METRICS_TARGET"]) == ("127.0.0.1:9090", "127.0.0.1:9092")
    assert container_secrets(collector) == {
        "FEDERATION_BEARER_TOKEN": variables["federation_token_secret_arn"],
        "LOGS_USERNAME": f"{variables['logs_credentials_secret_arn']}:username::",
        "LOGS_PASSWORD": f"{variables['logs_credentials_secret_arn']}:password::",
    }

    # Amazon Managed Prometheus: the workspace and one rule groups namespace per rule file.
    workspace = state["workspaces"]["mcp-moto1"]
    assert workspace["arn"] == outputs["prometheus_workspace"]["arn"]
    assert workspace["rule_groups"] == _rule_files()
    assert outputs["prometheus_rule_namespaces"] == sorted(_rule_files())

    # IAM: the task role may remote-write to this workspace only; the execution role reads
    # exactly the referenced secrets.
    assert service["task_role"].endswith("/mcp-moto1-task")
    assert state["roles"]["mcp-moto1-task"]["policies"] == {
        "remote-write": {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "RemoteWriteToWorkspace", "Effect": "Allow", "Action": ["aps:RemoteWrite"], "Resource": workspace["arn"]}
            ],
        }
    }
    execution = state["roles"]["mcp-moto1-execution"]["policies"]["pull-log-secrets"]["Statement"]
    read_secrets = next(s for s in execution if s["Sid"] == "ReadSecrets")
    assert sorted(read_secrets["Resource"]) == sorted([variables["federation_token_secret_arn"], variables["logs_credentials_secret_arn"]])
    for role in ("mcp-moto1-task", "mcp-moto1-execution"):
        assert state["roles"][role]["trust"]["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}

    # Logs.
    assert state["log_groups"]["/ecs/mcp-moto1"] == 30
    assert "/aws/prometheus/mcp-moto1" in state["log_groups"]


def _check_global(data: dict[str, Any]) -> None:
    outputs, state, variables = data["outputs"], data["applied"], data["variables"]

    # The federation Collector: OTLP/gRPC over TLS on 4317 (h2 by ALPN), health on 13133.
    nlb = state["load_balancers"]["mcp-motog-otel-otlp"]
    assert nlb["type"] == "network"
    assert nlb["listeners"] == {
        4317: {
            "protocol": "TLS",
            "certificates": [variables["certificate_arn"]],
            "ssl_policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            "actions": ["forward"],
            "alpn": ["HTTP2Preferred"],
        }
    }
    assert state["target_groups"]["mcp-motog-otel-otlp"] == {
        "port": 4317,
        "protocol": "TCP",
        "target_type": "ip",
        "health_protocol": "HTTP",
        "health_port": "13133",
        "health_path": "/",
    }
    assert outputs["federation_endpoint"].endswith(".elb.amazonaws.com:4317")

    service = state["services"]["mcp-motog-otel"]
    assert service["load_balancers"] == [("collector", 4317)]
    collector = service["containers"]["collector"]
    assert collector["image"] == _distribution_image()
    env = container_env(collector)
    assert yaml.safe_load(env["OTEL_COLLECTOR_CONFIG"]) == yaml.safe_load((OTEL_DIR / "collector" / "federation.yaml").read_text())
    workspace = state["workspaces"]["mcp-motog"]
    assert env["AMP_GLOBAL_REMOTE_WRITE_URL"] == f"{outputs['prometheus_workspace']['endpoint']}api/v1/remote_write"
    assert container_secrets(collector)["FEDERATION_BEARER_TOKEN"] == outputs["federation_token_secret_arn"]
    assert len(data["secrets"]["federation_token"]) == 48  # generated through Secrets Manager

    assert workspace["rule_groups"] == _rule_files()
    assert state["roles"]["mcp-motog-otel-task"]["policies"]["remote-write"]["Statement"] == [
        {"Sid": "RemoteWriteToWorkspace", "Effect": "Allow", "Action": ["aps:RemoteWrite"], "Resource": workspace["arn"]}
    ]
    assert state["log_groups"]["/ecs/mcp-motog-otel"] == 30


def _check_destroyed(data: dict[str, Any]) -> None:
    left = {key: value for key, value in data["destroyed"].items() if value}
    assert not left, f"terraform destroy left resources behind in moto: {left}"
    assert data["state_after_destroy"] == [], f"resources still in the state: {data['state_after_destroy']}"
