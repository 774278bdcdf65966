"""A real Prometheus server for tests: scrapes given loopback targets and loads our rules.

    with PrometheusServer([ScrapeJob("mcp-gateway", ["127.0.0.1:9090"])], tmp_path,
                          rule_files=RULE_FILES) as prom:
        prom.wait_for_series('up{job="mcp-gateway"} == 1', timeout=20)
        prom.query('sum(rate(mcp_gateway_requests_total[1m]))')

The server listens on a free loopback port, scrapes every second, keeps its TSDB in the
given directory and evaluates the rule files (copied with their group intervals shortened
to the evaluation interval, so recording rules have data within seconds). Waiting is
polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.net import LOOPBACK, free_port, wait_until


class PrometheusError(RuntimeError):
    """Prometheus did not start, or answered a query with an error."""


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape job: `job_name`, its `host:port` targets and optional extras."""

    name: str
    targets: Sequence[str]
    metrics_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        static: dict[str, Any] = {"targets": list(self.targets)}
        if self.labels:
            static["labels"] = dict(self.labels)
        return {"job_name": self.name, "metrics_path": self.metrics_path, "static_configs": [static]}


class PrometheusServer:
    """A `prometheus` process on a free loopback port; use as a context manager."""

    def __init__(
        self,
        jobs: Iterable[ScrapeJob],
        workdir: Path,
        *,
        rule_files: Iterable[Path] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        rule_group_interval: str | None = "1s",
        external_labels: Mapping[str, str] | None = None,
        scrape_self: bool = False,
        binary: str = "prometheus",
        start_timeout: float = 30.0,
    ) -> None:
        self.jobs = list(jobs)
        self.workdir = Path(workdir)
        self.rule_files = [Path(p) for p in rule_files]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.rule_group_interval = rule_group_interval
        self.external_labels = dict(external_labels or {})
        self.scrape_self = scrape_self
        self.binary = binary
        self.start_timeout = start_timeout
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "prometheus.log"

    # --- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise PrometheusError("Prometheus is not started")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def address(self) -> str:
        """`host:port` of the server itself (to scrape it, for instance)."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> PrometheusServer:
        binary = shutil.which(self.binary)
        if binary is None:
            raise PrometheusError(f"{self.binary} is not installed (Debian package `prometheus`)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        last_error: Exception | None = None
        for _ in range(3):  # a freshly picked free port can be taken by someone else
            self.port = free_port()
            config = self._write_config()
            data = self.workdir / f"data-{self.port}"
            log = self.log_path.open("ab")
            self._proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data}",
                    "--storage.tsdb.retention.time=1d",
                    f"--web.listen-address={self.address}",
                    "--web.enable-lifecycle",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
            log.close()
            try:
                wait_until(self._ready, self.start_timeout, 0.1, lambda: f"Prometheus on {self.address} not ready\n{self.log()}")
                return self
            except (PrometheusError, TimeoutError) as err:
                last_error = err
                self.stop()
                if "address already in use" not in self.log():
                    break
        raise PrometheusError(f"Prometheus did not start: {last_error}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise PrometheusError(f"prometheus exited with {self._proc.returncode}\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _write_config(self) -> Path:
        rules_dir = self.workdir / "rules"
        rules_dir.mkdir(exist_ok=True)
        rule_paths = []
        for path in self.rule_files:
            doc = yaml.safe_load(path.read_text()) or {}
            if self.rule_group_interval:
                for group in doc.get("groups", []):
                    group["interval"] = self.rule_group_interval
            target = rules_dir / path.name
            target.write_text(yaml.safe_dump(doc, sort_keys=False))
            rule_paths.append(str(target))
        jobs = list(self.jobs)
        if self.scrape_self:
            jobs.append(ScrapeJob("prometheus", [self.address]))
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": rule_paths,
            "scrape_configs": [job.config() for job in jobs],
        }
        if self.external_labels:
            config["global"]["external_labels"] = self.external_labels
        path = self.workdir / f"prometheus-{self.port}.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # --- HTTP API ------------------------------------------------------------------

    def api(self, endpoint: str, **params: str) -> Any:
        """GET /api/v1/<endpoint>; returns `data`, raises PrometheusError on an error answer."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{endpoint}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as err:
            try:
                body = json.load(err)
            except ValueError:
                raise PrometheusError(f"{url}: HTTP {err.code}") from err
        if body.get("status") != "success":
            raise PrometheusError(f"{endpoint} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        """Instant query; the result list (`metric`, `value`) of a vector, or [scalar] wrapped."""
        params = {"query": expr}
        if time is not None:
            params["time"] = f"{time:.3f}"
        data = self.api("query", **params)
        if data["resultType"] in ("vector", "matrix"):
            return data["result"]
        return [{"metric": {}, "value": data["result"]}]

    def wait_for_series(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll `expr` until it returns at least one series; return them."""
        last: list[Any] = []

        def nonempty() -> list[dict[str, Any]]:
            last[:] = [self.query(expr)]
            return last[0]

        return wait_until(nonempty, timeout, 0.1, lambda: f"{expr!r} returned no series (targets: {self.target_health()})")

    def target_health(self) -> dict[str, str]:
        """`job/instance` -> health (`up`, `down`, `unknown`) plus the last scrape error."""
        out = {}
        for target in self.api("targets")["activeTargets"]:
            key = f"{target['labels'].get('job')}/{target['labels'].get('instance')}"
            out[key] = target["health"] + (f" ({target['lastError']})" if target.get("lastError") else "")
        return out

    def rule_groups(self) -> list[dict[str, Any]]:
        return self.api("rules")["groups"]

    def wait_for_rule_evaluation(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every loaded rule has been evaluated at least once; return the groups."""

        def evaluated() -> list[dict[str, Any]]:
            groups = self.rule_groups()
            rules = [rule for group in groups for rule in group["rules"]]
            done = rules and all(not rule.get("lastEvaluation", "").startswith("0001-") for rule in rules)
            return groups if done else []

        return wait_until(evaluated, timeout, 0.1, lambda: "rules not evaluated yet")
