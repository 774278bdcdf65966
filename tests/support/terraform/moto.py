"""A moto server (the local AWS emulator from PyPI) on a free loopback port, and the provider
override that points the AWS provider at it.

moto serves the parts of the configurations applied here: EC2 networking, Elastic Load
Balancing, ECS, IAM, CloudWatch Logs, Amazon Managed Prometheus workspaces and rule groups,
Secrets Manager, ACM and STS. It does not serve (or not well enough for the AWS provider):
Amazon Managed Grafana, the Prometheus Alertmanager definition, Application Auto Scaling tags,
and ElastiCache replication groups' member clusters; the roots keep those behind the flags
`enable_grafana`, `enable_alertmanager`, `enable_autoscaling`/`collector_enable_autoscaling`
and `enable_redis`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.net import free_port, http_status, wait_until

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account

# Provider endpoint keys of every service the applied configurations call.
SERVICES = (
    "acm",
    "amp",
    "appautoscaling",
    "ec2",
    "ecs",
    "elasticache",
    "elbv2",
    "grafana",
    "iam",
    "logs",
    "route53",
    "secretsmanager",
    "sns",
    "sts",
)


class MotoUnavailable(RuntimeError):
    """moto[server] is not installed in the test environment."""


class MotoServer:
    """`python -m moto.server` on 127.0.0.1:<free port>; `stop()` ends exactly that process."""

    def __init__(self, log_path: Path) -> None:
        try:
            import boto3  # noqa: F401
            import moto  # noqa: F401
        except ImportError as err:  # pragma: no cover - environment problem, reported loudly
            raise MotoUnavailable(
                "moto[server] is not installed: `pip install 'moto[server]'` (test dependency) to run "
                "the terraform apply/destroy tests against the local AWS emulator."
            ) from err
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}:\n{self.log()}")
            return http_status(f"{self.endpoint}/moto-api/", timeout=2) == 200

        try:
            wait_until(ready, timeout, 0.2, lambda: f"moto server did not answer on {self.endpoint}:\n{self.log()}")
        except TimeoutError:
            self.stop()
            raise

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def provider_override(self) -> str:
        """An override file (`*_override.tf`) for a root: local state, the provider at moto, one retry."""
        endpoints = "\n".join(f'    {service} = "{self.endpoint}"' for service in SERVICES)
        return f"""# Written by tests/ops/test_terraform.py into a temporary copy: points the root at moto.
terraform {{
  backend "local" {{}}
}}

provider "aws" {{
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  max_retries                 = 1

  endpoints {{
{endpoints}
  }}
}}
"""
