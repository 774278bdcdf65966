"""Cold start: from `exec` of the gateway process to the first request it serves.

    .venv/bin/python bench/startup.py                 # 5 starts per mode, telemetry on and off
    .venv/bin/python bench/startup.py --runs 10 --demo

Serverless platforms start instances on demand, so the time to the first answered request is
what a caller waits. For each start it records, from just before the process is spawned:

- `alive`:  `/healthz` answers 200 (uvicorn listens; the app started);
- `first`:  the first MCP request is answered (`initialize`, which the gateway answers itself);
- `ready`:  `/readyz` answers 200 (backends' capabilities discovered);
- `call`:   the first `tools/call` through to a backend is answered;
- `cpu`:    the CPU seconds the gateway process had used when it answered `first` (the figure a
            busy machine does not inflate).

Modes: telemetry `on` (Prometheus endpoint, spans, OTLP export configured towards an endpoint
nobody listens on, which must not slow the start) and `off` (OTEL_SDK_DISABLED=true). The backend
is bench/echo_server.py over Streamable HTTP, started once beforehand; with `--demo` the gateway
runs its embedded demo instead (two stdio servers it spawns itself, counted in `ready`/`call`).
Goal (docs/telemetry.md, "Cost"): the first served request under 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import cpu_seconds  # noqa: E402
from tests.support.net import LOOPBACK, free_port, http_status  # noqa: E402
from tests.support.process import ManagedProcess  # noqa: E402

GOAL_SECONDS = 1.5
POLL = 0.005
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json", "mcp-protocol-version": "2025-06-18"}


def until(predicate, deadline: float) -> float:  # type: ignore[no-untyped-def]
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(POLL)
    raise TimeoutError("the gateway did not get there in time")


def start_once(mode: str, config: Path, tool: str, logs: Path) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MCP_GATEWAY_METRICS_PORT": str(free_port())}
    if mode == "off":
        env.update(OTEL_SDK_DISABLED="true", MCP_GATEWAY_METRICS_PORT="0")
    else:
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{LOOPBACK}:{free_port()}", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    base = f"http://{LOOPBACK}:{port}"
    args = [sys.executable, "-m", "app", "serve", "--host", LOOPBACK, "--port", str(port), "--log-level", "WARNING"]
    args += ["--config", str(config)] if config.name != "demo" else []
    log = (logs / f"gateway-{mode}-{port}.log").open("wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = t0 + 30
        client = httpx.Client(timeout=5)
        alive = until(lambda: http_status(f"{base}/healthz", timeout=0.5) == 200, deadline)
        first_response = client.post(f"{base}/mcp", json=INIT, headers=HEADERS)
        first = time.monotonic()
        first_cpu = cpu_seconds(proc.pid)
        assert first_response.status_code == 200, first_response.text
        session = {**HEADERS, "mcp-session-id": first_response.headers["mcp-session-id"]}
        ready = until(lambda: http_status(f"{base}/readyz", timeout=0.5) == 200, deadline)
        call = client.post(
            f"{base}/mcp",
            headers=session,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": tool, "arguments": {"text": "x"} if "echo" in tool else {"city": "Oslo"}},
            },
        )
        assert call.status_code == 200 and '"result"' in call.text, call.text
        called = time.monotonic()
        client.close()
        return {"alive": alive - t0, "first": first - t0, "ready": ready - t0, "call": called - t0, "cpu": first_cpu}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="gateway cold start to first served request")
    parser.add_argument("--runs", type=int, default=5, help="starts per mode (default 5)")
    parser.add_argument("--modes", default="on,off", help="telemetry modes: on, off (default both)")
    parser.add_argument("--demo", action="store_true", help="the embedded demo (stdio backends) instead of an HTTP backend")
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    backend: ManagedProcess | None = None
    try:
        if args.demo:
            config, tool = Path("demo"), "weather__get_forecast"
        else:
            backend_port = free_port()
            backend = ManagedProcess(
                [sys.executable, str(ROOT / "bench" / "echo_server.py"), "--host", LOOPBACK, "--port", str(backend_port)],
                logs / "backend.log",
                cwd=ROOT,
            ).start()
            url = f"http://{LOOPBACK}:{backend_port}/mcp"
            backend.wait_ready(lambda: http_status(url) is not None, 30, "backend")
            config, tool = logs / "gateway.yaml", "bench__echo"
            config.write_text(yaml.safe_dump({"namespaces": {"bench": {"backends": [{"name": "bench-1", "url": url}]}}}))
        print(
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; {args.runs} starts per mode; "
            f"{'embedded demo (stdio backends)' if args.demo else 'one Streamable HTTP backend'}"
        )
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
        start_once(modes[0], config, tool, logs)  # warm the file cache; not counted
        for _ in range(args.runs):
            for mode in modes:
                results[mode].append(start_once(mode, config, tool, logs))
        print(f"\nseconds from spawn, median (max) of {args.runs}:")
        columns = ("alive", "first", "ready", "call", "cpu")
        print(f"{'telemetry':<10}" + "".join(f"{k:>16}" for k in columns))
        for mode, runs in results.items():
            cells = "".join(f"{statistics.median(r[k] for r in runs):>9.3f} ({max(r[k] for r in runs):.3f})" for k in columns)
            print(f"{mode:<10}{cells}")
        print("cpu: CPU seconds the gateway process used until it answered its first request (what a machine")
        print(f"with a free core turns into wall time; load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs).")
        worst = max(r["first"] for runs in results.values() for r in runs)
        print(f"\nfirst served request: worst {worst:.3f} s   [goal < {GOAL_SECONDS:g} s: {'MET' if worst < GOAL_SECONDS else 'MISSED'}]")
        return 0
    finally:
        if backend is not None:
            backend.stop()
        for path in logs.iterdir():
            path.unlink()
        logs.rmdir()


if __name__ == "__main__":
    raise SystemExit(main())
