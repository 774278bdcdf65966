"""The gateway under test as a real process: `python -m app serve --config FILE`."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .net import LOOPBACK, free_port, http_status
from .paths import REPO_ROOT
from .process import ManagedProcess

READY_TIMEOUT = 20.0


@dataclass
class GatewayProc:
    """A running gateway: `url` is its base URL (`url + "/mcp"` is the MCP endpoint)."""

    url: str
    port: int
    proc: ManagedProcess
    log_path: Path
    #: The `/metrics` port when the test asked for one (env MCP_GATEWAY_METRICS_PORT), else None.
    metrics_port: int | None = None

    def read_log(self) -> str:
        return self.proc.read_log()


def start_gateway(config: Mapping[str, Any], workdir: Path, env: Mapping[str, str] | None = None) -> GatewayProc:
    """Write `config` as YAML, start the gateway on a free loopback port, wait for /readyz 200.

    The environment is the test's own plus `env`; the metrics listener gets a free port
    (`MCP_GATEWAY_METRICS_PORT=0`) unless `env` says otherwise.
    """
    port = free_port()
    config_path = workdir / f"gateway-{port}.yaml"
    config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    args = [sys.executable, "-m", "app", "serve", "--config", config_path, "--host", LOOPBACK, "--port", port]
    proc_env = {"MCP_GATEWAY_METRICS_PORT": "0", **(env or {})}
    proc = ManagedProcess(args, workdir / f"gateway-{port}.log", env=proc_env, cwd=REPO_ROOT).start()
    url = f"http://{LOOPBACK}:{port}"
    try:
        proc.wait_ready(lambda: http_status(f"{url}/readyz") == 200, READY_TIMEOUT, f"gateway not ready at {url}/readyz")
    except BaseException:
        proc.stop()
        raise
    metrics_port = int(proc_env["MCP_GATEWAY_METRICS_PORT"]) or None
    return GatewayProc(url=url, port=port, proc=proc, log_path=proc.log_path, metrics_port=metrics_port)
