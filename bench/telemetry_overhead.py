"""What telemetry costs: the same `tools/call` load through the gateway with telemetry on and off.

    .venv/bin/python bench/telemetry_overhead.py                      # ~1 minute
    .venv/bin/python bench/telemetry_overhead.py --windows 20 --window 3 --concurrency 16

On loopback: one official-SDK backend (bench/echo_server.py) and one gateway process per mode in
front of it, all running at once:

- `off`:    OTEL_SDK_DISABLED=true, no scrape endpoint, log level WARNING (no per-request line):
            nothing of the telemetry runs but no-op calls.
- `scrape`: the Prometheus endpoint (scraped every second), spans made for every request but not
            exported, one JSON log line per request.
- `on`:     everything production runs: `scrape`, plus OTLP/gRPC export of spans, metrics and
            log records to a receiver process (tests/support/otlp.py, standing in for the
            Collector; it runs on the same machine and takes CPU from everyone alike).

The load goes to one gateway at a time, in short windows that rotate over the modes (`--windows`
rounds of `--window` seconds each), so whatever else the machine does falls on every mode alike;
sessions stay open across windows. Reported per mode: throughput, p50/p99 latency, and the
gateway's CPU per call (from /proc), the most direct measure of the cost. The overhead is
1 - throughput(mode) / throughput(off); the goal is under 15 % (docs/telemetry.md, "Cost").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import cpu_seconds  # noqa: E402
from tests.support.net import LOOPBACK, free_port, http_status  # noqa: E402
from tests.support.process import ManagedProcess  # noqa: E402

ACCEPT = "application/json, text/event-stream"
PROTOCOL = "2025-06-18"
GOAL_OVERHEAD = 0.15
WINDOW_WARMUP = 0.3
RECEIVER = """
import signal, sys
sys.path.insert(0, {root!r})
from tests.support.otlp import OtlpReceiver
receiver = OtlpReceiver().start()
print(receiver.grpc_endpoint, flush=True)
signal.sigwait({{signal.SIGTERM, signal.SIGINT}})
"""


def wait_ready(proc: ManagedProcess, url: str, expect: int | None = None) -> None:
    proc.wait_ready(lambda: (s := http_status(url)) is not None and (expect is None or s == expect), 30.0, f"{url} not ready")


@dataclass
class Tally:
    """What one mode accumulated over its windows."""

    mode: str
    calls: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    windows: list[float] = field(default_factory=list)  # throughput of each window


class Worker:
    """One MCP session on one keep-alive connection, calling `echo`."""

    def __init__(self, url: str, index: int):
        self.url = url
        self.client = httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
        self.headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": PROTOCOL}
        self.text = f"worker {index}"
        self.next_id = 0

    async def open(self) -> None:
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
        }
        response = await self.client.post(self.url, content=orjson.dumps(init), headers=self.headers)
        response.raise_for_status()
        self.headers["mcp-session-id"] = response.headers["mcp-session-id"]
        await self.client.post(self.url, content=b'{"jsonrpc":"2.0","method":"notifications/initialized"}', headers=self.headers)

    async def call(self) -> None:
        self.next_id += 1
        body = {
            "jsonrpc": "2.0",
            "id": self.next_id,
            "method": "tools/call",
            "params": {"name": "bench__echo", "arguments": {"text": self.text}},
        }
        response = await self.client.post(self.url, content=orjson.dumps(body), headers=self.headers)
        if response.status_code != 200 or self.text.encode() not in response.content:
            raise RuntimeError(f"bad answer: HTTP {response.status_code} {response.text[:300]}")

    async def close(self) -> None:
        await self.client.aclose()


async def window(workers: list[Worker], seconds: float, pid: int, tally: Tally) -> None:
    """Load one gateway for `seconds` (after a short unmeasured start)."""
    state = {"measuring": False, "stop": False}
    latencies: list[float] = []

    async def loop(worker: Worker) -> None:
        while not state["stop"]:
            started = time.perf_counter()
            await worker.call()
            if state["measuring"] and not state["stop"]:
                latencies.append(time.perf_counter() - started)

    tasks = [asyncio.create_task(loop(w)) for w in workers]
    try:
        await asyncio.sleep(WINDOW_WARMUP)
        cpu_before = cpu_seconds(pid)
        state["measuring"] = True
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            for task in tasks:
                if task.done():
                    task.result()
            await asyncio.sleep(0.02)
        state["stop"] = True
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    tally.calls += len(latencies)
    tally.seconds += elapsed
    tally.cpu += cpu
    tally.latencies += latencies
    tally.windows.append(len(latencies) / elapsed)


class Scraper:
    """Scrapes /metrics every second, as Prometheus would, on a thread."""

    def __init__(self, urls: list[str]):
        self.urls = urls
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(1.0):
                for url in self.urls:
                    self.count += client.get(url).status_code == 200

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def gateway_env(mode: str, otlp_endpoint: str, metrics_port: int) -> tuple[dict[str, str], str]:
    if mode == "off":
        return {"OTEL_SDK_DISABLED": "true", "MCP_GATEWAY_METRICS_PORT": "0"}, "WARNING"
    env = {"MCP_GATEWAY_METRICS_PORT": str(metrics_port), "OTEL_TRACES_SAMPLER": "parentbased_always_on"}
    if mode == "on":
        env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    return env, "INFO"


def start_gateway(mode: str, backend_url: str, otlp_endpoint: str, logs: Path) -> tuple[ManagedProcess, str, str | None]:
    port, metrics_port = free_port(), free_port()
    config = logs / f"gateway-{mode}.yaml"
    # Rate limits off: the load would exceed the default per-address budget in seconds.
    config.write_text(
        yaml.safe_dump(
            {"rate_limits": {"enabled": False}, "namespaces": {"bench": {"backends": [{"name": "bench-1", "url": backend_url}]}}}
        )
    )
    env, level = gateway_env(mode, otlp_endpoint, metrics_port)
    proc = ManagedProcess(
        [sys.executable, "-m", "app", "serve", "--config", config, "--host", LOOPBACK, "--port", port, "--log-level", level],
        logs / f"gateway-{mode}.log",
        env=env,
        cwd=ROOT,
    ).start()
    wait_ready(proc, f"http://{LOOPBACK}:{port}/readyz", 200)
    return proc, f"http://{LOOPBACK}:{port}/mcp", f"http://{LOOPBACK}:{metrics_port}/metrics" if mode != "off" else None


async def run(args: argparse.Namespace, gateways: dict[str, tuple[ManagedProcess, str]]) -> dict[str, Tally]:
    workers = {mode: [Worker(url, i) for i in range(args.concurrency)] for mode, (_, url) in gateways.items()}
    tallies = {mode: Tally(mode) for mode in gateways}
    try:
        for mode in gateways:
            await asyncio.gather(*(w.open() for w in workers[mode]))
            await window(workers[mode], args.window, gateways[mode][0].pid or 0, Tally(mode))  # warm-up, not counted
        modes = list(gateways)
        for rnd in range(args.windows):
            for mode in modes[rnd % len(modes) :] + modes[: rnd % len(modes)]:  # rotate who goes first
                await window(workers[mode], args.window, gateways[mode][0].pid or 0, tallies[mode])
            line = "  ".join(f"{m} {tallies[m].windows[-1]:5.0f}/s" for m in modes)
            print(f"  window {rnd + 1:>2}: {line}", flush=True)
    finally:
        await asyncio.gather(*(w.close() for ws in workers.values() for w in ws))
    return tallies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tools/call throughput through the gateway, telemetry on vs off")
    parser.add_argument("--window", type=float, default=2.0, help="measured seconds per window (default 2)")
    parser.add_argument("--windows", type=int, default=10, help="rounds of windows over the modes (default 10)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent sessions (default 8)")
    parser.add_argument("--modes", default="off,scrape,on", help="comma-separated: off, scrape, on (default all three)")
    parser.add_argument("--json", dest="json_out", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    logs = Path(tempfile.mkdtemp(prefix="telemetry-bench-"))
    procs: list[ManagedProcess] = []
    load_before = os.getloadavg()[0]
    try:
        backend_port = free_port()
        backend = ManagedProcess(
            [sys.executable, str(ROOT / "bench" / "echo_server.py"), "--host", LOOPBACK, "--port", str(backend_port)],
            logs / "backend.log",
            cwd=ROOT,
        ).start()
        procs.append(backend)
        backend_url = f"http://{LOOPBACK}:{backend_port}/mcp"
        wait_ready(backend, backend_url)
        receiver = ManagedProcess([sys.executable, "-c", RECEIVER.format(root=str(ROOT))], logs / "receiver.log", cwd=ROOT).start()
        procs.append(receiver)
        endpoint = receiver.wait_ready(
            lambda: next((line for line in receiver.read_log().splitlines() if line.startswith("http://")), None), 30, "OTLP receiver"
        )
        gateways: dict[str, tuple[ManagedProcess, str]] = {}
        scrape_urls = []
        for mode in modes:
            proc, url, metrics_url = start_gateway(mode, backend_url, endpoint, logs)
            procs.append(proc)
            gateways[mode] = (proc, url)
            scrape_urls += [metrics_url] if metrics_url else []
        print(
            f"{os.cpu_count()} CPUs, load {load_before:.2f}; concurrency {args.concurrency}; {args.windows} rounds of "
            f"{args.window:g} s windows over {', '.join(modes)}; backend {backend_url}; OTLP receiver {endpoint}",
            flush=True,
        )
        with Scraper(scrape_urls) as scraper:
            tallies = asyncio.run(run(args, gateways))
        summary: dict[str, dict[str, float]] = {}
        print(
            f"\n{'mode':<8}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'gateway CPU ms/call':>22}   (load {load_before:.2f} -> {os.getloadavg()[0]:.2f}; {scraper.count} scrapes)"
        )
        for mode in modes:
            t = tallies[mode]
            ordered = sorted(t.latencies)
            summary[mode] = {
                "throughput": t.calls / t.seconds,
                "p50_ms": statistics.median(ordered) * 1000,
                "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
                "gateway_cpu_ms_per_call": t.cpu * 1000 / t.calls,
                "calls": t.calls,
            }
            s = summary[mode]
            print(f"{mode:<8}{s['throughput']:>10.0f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}{s['gateway_cpu_ms_per_call']:>22.3f}")
        if "off" in summary:
            for mode in (m for m in modes if m != "off"):
                cost = 1 - summary[mode]["throughput"] / summary["off"]["throughput"]
                cpu = summary[mode]["gateway_cpu_ms_per_call"] / summary["off"]["gateway_cpu_ms_per_call"] - 1
                wins = sum(a < b for a, b in zip(tallies[mode].windows, tallies["off"].windows, strict=False))
                summary[mode]["overhead"] = cost
                print(
                    f"telemetry {mode}: throughput cost {cost:.1%} (slower than off in {wins} of {args.windows} windows), "
                    f"gateway CPU per call {cpu:+.1%}   [goal < {GOAL_OVERHEAD:.0%}: {'MET' if cost < GOAL_OVERHEAD else 'MISSED'}]"
                )
        if args.json_out:
            Path(args.json_out).write_text(
                json.dumps(
                    {
                        "settings": vars(args),
                        "load_before": load_before,
                        "tallies": {m: {**asdict(t), "latencies": None} for m, t in tallies.items()},
                        "summary": summary,
                    },
                    indent=2,
                )
            )
        return 0
    finally:
        for proc in reversed(procs):
            proc.stop()
        for path in logs.iterdir():
            path.unlink()
        logs.rmdir()


if __name__ == "__main__":
    raise SystemExit(main())
