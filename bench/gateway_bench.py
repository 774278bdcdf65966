"""`tools/call` through the gateway versus direct to the backend, side by side, in one run.

    .venv/bin/python bench/gateway_bench.py                 # ~1 minute: c=1 and c=16, 10 s each
    .venv/bin/python bench/gateway_bench.py --duration 5 --concurrency 1,4,16 --json-response

It starts, on loopback only, one official-SDK backend (bench/echo_server.py, or
tests/servers/everything.py with `--backend everything`) and one gateway process in front of it
(`python -m app serve --config ...`, its Prometheus endpoint on a free port, as deployed), then,
for each concurrency, measures the same workload DIRECT to the backend and THROUGH the gateway:

- one MCP session per worker (initialize + notifications/initialized, not timed), each worker on
  its own keep-alive HTTP/1.1 connection (httpx.AsyncClient, one connection each);
- a warm-up (not counted), then `tools/call echo` in a closed loop for --duration seconds (or until
  --calls calls), JSON or SSE answers parsed and checked;
- throughput, p50/p90/p99 latency, and the CPU each process used per call (from /proc), so a
  saturated client or backend shows up instead of being mistaken for gateway overhead; and how
  much CPU other processes on the machine (and the hypervisor, as steal) took meanwhile, because
  on a shared machine that, not the gateway, can dominate every figure.

The gateway's rate limiter runs with limits the benchmark cannot reach (`--rate-limits`), so its
cost is included but it never refuses. `--gateway-src DIR` runs the gateway from another checkout
(A/B comparison of two versions against the same backend and client).

Everything it starts is stopped when it ends (also on Ctrl-C), and the run is bounded (per case:
warm-up + duration; the whole run has a time budget).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Keep the client lean: httpcore tries `import sniffio` for every lock it creates, and when the
# optional sniffio is absent each failed import walks sys.path. None makes it fail at once.
try:
    import sniffio  # noqa: F401
except ImportError:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

from bench.measure import CLOCK_TICKS, cpu_seconds, percentile  # noqa: E402
from tests.support.net import LOOPBACK, free_port, http_status  # noqa: E402
from tests.support.process import ManagedProcess  # noqa: E402

ACCEPT = "application/json, text/event-stream"
PROTOCOL = "2025-06-18"
NAMESPACE = "bench"
START_TIMEOUT = 30.0
#: Goals (docs/performance.md): added p50 at concurrency 1, and gateway/direct throughput at 16.
GOAL_ADDED_P50_MS = 2.0
GOAL_THROUGHPUT_RATIO = 0.60


# -- processes -----------------------------------------------------------------------------------


def machine_jiffies() -> tuple[int, int, int]:
    """Whole-machine (busy, steal, total) CPU jiffies from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal, sum(values[:8])


def wait_ready(proc: ManagedProcess, url: str, what: str, expect: int | None = None) -> None:
    proc.wait_ready(lambda: (s := http_status(url)) is not None and (expect is None or s == expect), START_TIMEOUT, what)


def start_backend(kind: str, json_response: bool, logs: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    if kind == "echo":
        args = [sys.executable, str(ROOT / "bench" / "echo_server.py"), "--host", LOOPBACK, "--port", str(port)]
    else:
        script = ROOT / "tests" / "servers" / "everything.py"
        args = [sys.executable, str(script), "--name", "bench", "--transport", "http", "--host", LOOPBACK, "--port", str(port)]
    args += ["--json-response"] if json_response else []
    proc = ManagedProcess(args, logs / f"backend-{port}.log", cwd=ROOT, env={"PYTHONPATH": str(ROOT)}).start()
    url = f"http://{LOOPBACK}:{port}/mcp"
    wait_ready(proc, url, f"backend did not start at {url}")
    return proc, url


#: Rate limits the benchmark cannot reach: the limiter runs (and costs what it costs), never refuses.
UNREACHABLE_RATE = "100000000/minute"


def start_gateway(backend_url: str, prefix: bool, log_level: str, logs: Path, src: Path, rate_limits: str) -> tuple[ManagedProcess, str]:
    port = free_port()
    config: dict[str, object] = {
        "namespaces": {NAMESPACE: {"prefix": prefix, "backends": [{"name": f"{NAMESPACE}-1", "url": backend_url}]}}
    }
    if rate_limits == "unreachable":
        config["rate_limits"] = {"per_ip": UNREACHABLE_RATE, "per_principal": UNREACHABLE_RATE}
    elif rate_limits == "off":
        config["rate_limits"] = {"enabled": False}
    config_path = logs / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    args = [
        sys.executable,
        "-m",
        "app",
        "serve",
        "--config",
        str(config_path),
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--log-level",
        log_level,
    ]
    env = {"MCP_GATEWAY_METRICS_PORT": str(free_port())}  # The scrape endpoint is on by default.
    proc = ManagedProcess(args, logs / f"gateway-{port}.log", env=env, cwd=src).start()
    base = f"http://{LOOPBACK}:{port}"
    wait_ready(proc, f"{base}/readyz", f"gateway not ready at {base}/readyz", expect=200)
    return proc, f"{base}/mcp"


# -- the load generator ------------------------------------------------------------------------------


class CallFailed(RuntimeError):
    pass


def answer(response: httpx.Response, request_id: int) -> dict:
    """The JSON-RPC response to `request_id` in a JSON or SSE answer."""
    if response.status_code != 200:
        raise CallFailed(f"HTTP {response.status_code}: {response.text[:300]}")
    body = response.content
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in body.split(b"\n"):
            if line.startswith(b"data:") and line[5:].strip():
                message = orjson.loads(line[5:])
                if message.get("id") == request_id and ("result" in message or "error" in message):
                    return message
        raise CallFailed(f"no response for id {request_id} in the SSE answer: {body[:300]!r}")
    return orjson.loads(body)


class Worker:
    """One MCP session on one keep-alive connection."""

    def __init__(self, url: str, tool: str, index: int):
        self.url = url
        self.tool = tool.encode()
        self.text = f"worker {index} says hello".encode()
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(30.0), limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
        self.headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": PROTOCOL}
        self.next_id = 0

    async def open(self) -> None:
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
        }
        response = await self.client.post(self.url, content=orjson.dumps(init), headers=self.headers)
        if "result" not in answer(response, 0):
            raise CallFailed(f"initialize failed: {response.text[:300]}")
        self.headers["mcp-session-id"] = response.headers["mcp-session-id"]
        ack = await self.client.post(self.url, content=b'{"jsonrpc":"2.0","method":"notifications/initialized"}', headers=self.headers)
        if ack.status_code != 202:
            raise CallFailed(f"notifications/initialized: HTTP {ack.status_code}")

    async def call(self) -> None:
        self.next_id += 1
        body = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"%s","arguments":{"text":"%s"}}}' % (
            self.next_id,
            self.tool,
            self.text,
        )
        message = answer(await self.client.post(self.url, content=body, headers=self.headers), self.next_id)
        result = message.get("result")
        if not result or result.get("isError") or result["content"][0].get("text") != self.text.decode():
            raise CallFailed(f"unexpected answer: {message}")

    async def close(self) -> None:
        try:
            await self.client.delete(self.url, headers=self.headers, timeout=5)
        except httpx.HTTPError:
            pass
        await self.client.aclose()


@dataclass
class Result:
    target: str
    concurrency: int
    calls: int
    seconds: float
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms_per_call: dict[str, float] = field(default_factory=dict)
    cpu_share: dict[str, float] = field(default_factory=dict)
    #: Whole machine during the case, in cores: everything busy, what other processes used, steal.
    machine: dict[str, float] = field(default_factory=dict)


async def run_case(
    target: str,
    url: str,
    tool: str,
    concurrency: int,
    warmup: float,
    duration: float,
    max_calls: int | None,
    pids: dict[str, int],
) -> Result:
    workers = [Worker(url, tool, i) for i in range(concurrency)]
    await asyncio.gather(*(w.open() for w in workers))
    latencies: list[float] = []
    phase = {"measuring": False, "stop": False}

    async def loop(worker: Worker) -> None:
        while not phase["stop"]:
            started = time.perf_counter()
            await worker.call()
            if phase["measuring"] and not phase["stop"]:
                latencies.append(time.perf_counter() - started)
                if max_calls is not None and len(latencies) >= max_calls:
                    phase["stop"] = True

    tasks = [asyncio.create_task(loop(w)) for w in workers]
    try:
        await asyncio.sleep(warmup)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        client_before = time.process_time()
        machine_before = machine_jiffies()
        phase["measuring"] = True
        started = time.perf_counter()
        deadline = started + duration
        while not phase["stop"] and time.perf_counter() < deadline:
            done = [t for t in tasks if t.done()]
            if done:
                done[0].result()  # A failed call ends the case with its error.
            await asyncio.sleep(0.02)
        phase["stop"] = True
        elapsed = time.perf_counter() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["client"] = time.process_time() - client_before
        machine_after = machine_jiffies()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(w.close() for w in workers))
    if not latencies:
        raise CallFailed(f"{target} c={concurrency}: no call completed")
    ordered = sorted(latencies)
    calls = len(ordered)
    return Result(
        target=target,
        concurrency=concurrency,
        calls=calls,
        seconds=round(elapsed, 3),
        throughput=calls / elapsed,
        p50_ms=statistics.median(ordered) * 1000,
        p90_ms=percentile(ordered, 0.90) * 1000,
        p99_ms=percentile(ordered, 0.99) * 1000,
        max_ms=ordered[-1] * 1000,
        cpu_ms_per_call={name: seconds * 1000 / calls for name, seconds in cpu.items()},
        cpu_share={name: seconds / elapsed for name, seconds in cpu.items()},
        machine=machine_load(machine_before, machine_after, elapsed, sum(cpu.values())),
    )


def machine_load(before: tuple[int, int, int], after: tuple[int, int, int], elapsed: float, ours: float) -> dict[str, float]:
    busy, steal, _ = (b - a for a, b in zip(before, after, strict=False))
    busy_cores = busy / CLOCK_TICKS / elapsed
    return {
        "busy": round(busy_cores, 2),
        "others": round(max(0.0, busy_cores - ours / elapsed), 2),
        "steal": round(steal / CLOCK_TICKS / elapsed, 2),
    }


# -- report ---------------------------------------------------------------------------------------------


def print_report(results: list[Result], args: argparse.Namespace, load_before: tuple[float, ...], load_after: tuple[float, ...]) -> dict:
    print()
    print(
        f"tools/call echo, {args.duration:g} s per case after {args.warmup:g} s warm-up; backend {args.backend} "
        f"({'JSON' if args.json_response else 'SSE'} answers); gateway namespace {'prefixed' if args.prefix else 'unprefixed'}, "
        f"log level {args.log_level}, rate limiter {args.rate_limits}"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
        f"load average before {load_before[0]:.2f} / after {load_after[0]:.2f} (1 min)"
    )
    print()
    head = (
        f"{'concurrency':>11}  {'target':<8} {'calls':>7} {'calls/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}   "
        f"{'CPU ms per call (share of one core)':<58} {'others/steal (cores)':<20}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        cpu = "  ".join(
            f"{name} {r.cpu_ms_per_call[name]:.2f} ({r.cpu_share[name]:.0%})"
            for name in ("client", "backend", "gateway")
            if name in r.cpu_ms_per_call
        )
        print(
            f"{r.concurrency:>11}  {r.target:<8} {r.calls:>7} {r.throughput:>9.0f} {r.p50_ms:>8.2f} {r.p90_ms:>8.2f} "
            f"{r.p99_ms:>8.2f}   {cpu:<58} {r.machine['others']:.2f} / {r.machine['steal']:.2f}"
        )
    print("others/steal: CPU that processes outside this benchmark used, and that the hypervisor took, during the")
    print(f"case, in cores (of {os.cpu_count()}); a busy machine makes every figure worse, the gateway's most.")
    print()
    summary: dict[str, object] = {}
    by = {(r.target, r.concurrency): r for r in results}
    for c in sorted({r.concurrency for r in results}):
        direct, via = by.get(("direct", c)), by.get(("gateway", c))
        if not direct or not via:
            continue
        added = via.p50_ms - direct.p50_ms
        ratio = via.throughput / direct.throughput
        line = f"c={c:<3} gateway adds p50 {added:+.2f} ms, p99 {via.p99_ms - direct.p99_ms:+.2f} ms; throughput {ratio:.0%} of direct"
        if c == 1:
            verdict = "MET" if added < GOAL_ADDED_P50_MS else "MISSED"
            line += f"   [goal: added p50 < {GOAL_ADDED_P50_MS:g} ms: {verdict}]"
            summary["added_p50_ms_c1"] = round(added, 3)
            summary["goal_added_p50"] = verdict
        if c == 16:
            verdict = "MET" if ratio >= GOAL_THROUGHPUT_RATIO else "MISSED"
            line += f"   [goal: >= {GOAL_THROUGHPUT_RATIO:.0%} of direct: {verdict}]"
            summary["throughput_ratio_c16"] = round(ratio, 3)
            summary["goal_throughput"] = verdict
        print(line)
    return summary


# -- main -----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="tools/call direct vs through the gateway, on loopback")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per case (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each case (default 2)")
    parser.add_argument("--calls", type=int, default=None, help="stop a case after this many measured calls (still bounded by --duration)")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated worker counts (default 1,16)")
    parser.add_argument(
        "--backend", choices=("echo", "everything"), default="echo", help="bench/echo_server.py (default) or tests/servers/everything.py"
    )
    parser.add_argument("--json-response", action="store_true", help="backend answers with JSON instead of SSE")
    parser.add_argument(
        "--no-prefix", dest="prefix", action="store_false", help="unprefixed namespace (pass-through names) instead of bench__echo"
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="gateway log level")
    parser.add_argument(
        "--rate-limits",
        choices=("unreachable", "off", "config-default"),
        default="unreachable",
        help="gateway rate limiter: on with limits the run cannot reach (default: its cost is measured), "
        "off, or the configuration's defaults (which a benchmark exceeds: 429s); config-default also "
        "suits a checkout without the rate_limits key",
    )
    parser.add_argument(
        "--gateway-src",
        type=Path,
        default=ROOT,
        metavar="DIR",
        help="run the gateway's `app` package from another checkout (A/B comparisons); default: this one",
    )
    parser.add_argument("--json", dest="json_out", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (printed path)")
    args = parser.parse_args(argv)
    args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.levels or min(args.levels) < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("concurrency must be positive integers, duration > 0, warmup >= 0")
    return args


async def bench(args: argparse.Namespace, backend_url: str, gateway_url: str, pids: dict[str, int]) -> list[Result]:
    results = []
    direct_tool = "echo"
    gateway_tool = f"{NAMESPACE}__echo" if args.prefix else "echo"
    for c in args.levels:
        for target, url, tool in (("direct", backend_url, direct_tool), ("gateway", gateway_url, gateway_tool)):
            result = await run_case(
                target, url, tool, c, args.warmup, args.duration, args.calls, pids if target == "gateway" else {"backend": pids["backend"]}
            )
            print(
                f"  {target:<8} c={c:<3} {result.throughput:8.0f} calls/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms",
                flush=True,
            )
            results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    procs: list[ManagedProcess] = []
    load_before = os.getloadavg()
    try:
        backend, backend_url = start_backend(args.backend, args.json_response, logs)
        procs.append(backend)
        gateway, gateway_url = start_gateway(backend_url, args.prefix, args.log_level, logs, args.gateway_src.resolve(), args.rate_limits)
        procs.append(gateway)
        print(
            f"backend {backend_url} (pid {backend.pid}), gateway {gateway_url} (pid {gateway.pid}, app from {args.gateway_src.resolve()})",
            flush=True,
        )
        pids = {"backend": backend.pid, "gateway": gateway.pid}
        per_case = args.warmup + args.duration + 15
        budget = per_case * 2 * len(args.levels) + 30
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            loop_factory = None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            results = runner.run(asyncio.wait_for(bench(args, backend_url, gateway_url, pids), budget))
        summary = print_report(results, args, load_before, os.getloadavg())
        if args.json_out:
            Path(args.json_out).write_text(
                json.dumps(
                    {
                        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json_out"},
                        "cpus": os.cpu_count(),
                        "load_before": load_before,
                        "results": [asdict(r) for r in results],
                        "summary": summary,
                    },
                    indent=2,
                )
            )
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        for proc in procs:
            print(proc.describe(), file=sys.stderr)
        raise
    finally:
        for proc in reversed(procs):
            proc.stop()
        if args.keep_logs:
            print(f"logs: {logs}")
        else:
            for path in logs.iterdir():
                path.unlink()
            logs.rmdir()


if __name__ == "__main__":
    sys.exit(main())
