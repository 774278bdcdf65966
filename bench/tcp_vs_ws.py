"""The same `tools/call` load over MCPB/TCP (through the bridge) and over WebSocket, in one run.

    .venv/bin/python bench/tcp_vs_ws.py                        # ~1 minute: c=1 and c=16, 8 s each
    .venv/bin/python bench/tcp_vs_ws.py --duration 5 --concurrency 1,4,16 --rounds 2

It starts, on loopback only, one official-SDK backend (bench/echo_server.py, Streamable HTTP), one
gateway in front of it (`python -m app serve`) and one TCP bridge in front of the gateway
(`python -m app.tcp_bridge`), then for each concurrency measures:

- `ws`:  worker → gateway `/ws` (subprotocol `mcp`, the `websockets` client);
- `tcp`: worker → bridge (MCPB frames, app.tcp_bridge.MCPBClient) → gateway `/ws`.

Each worker has its own connection and MCP session (initialize + notifications/initialized, not
timed) and calls `tools/call echo` in a closed loop after a warm-up. `--pipeline N` makes each
worker keep N calls in flight on its one connection instead of one. The cases alternate (ws, tcp,
tcp, ws, ...) over `--rounds` so that drift in the machine's load does not favour one side.
Reported: throughput, p50/p99 latency, and CPU per call of every process (from /proc), since on a
small machine the processes compete for the same cores.
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
import yaml
from websockets.asyncio.client import connect as ws_connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.tcp_bridge.client import MCPBClient  # noqa: E402
from bench.measure import cpu_seconds, percentile  # noqa: E402
from tests.support.net import LOOPBACK, free_port, http_status, tcp_accepts  # noqa: E402
from tests.support.process import ManagedProcess  # noqa: E402

PROTOCOL = "2025-06-18"
NAMESPACE = "bench"
TOOL = f"{NAMESPACE}__echo"
START_TIMEOUT = 30.0


# -- processes -------------------------------------------------------------------------------------
def start_all(logs: Path, log_level: str, procs: list[ManagedProcess]) -> tuple[dict[str, int], str, tuple[str, int]]:
    """Backend, gateway and bridge, appended to `procs` as they start (so all of them get stopped)."""
    port = free_port()
    backend = ManagedProcess(
        [sys.executable, str(ROOT / "bench" / "echo_server.py"), "--host", LOOPBACK, "--port", str(port), "--json-response"],
        logs / "backend.log",
        cwd=ROOT,
    ).start()
    procs.append(backend)
    backend_url = f"http://{LOOPBACK}:{port}/mcp"
    backend.wait_ready(lambda: http_status(backend_url) is not None, START_TIMEOUT, "backend did not start")

    port = free_port()
    config = logs / "gateway.yaml"
    # Rate limits off: the benchmark measures transport cost, not the limiter's budget.
    config.write_text(
        yaml.safe_dump(
            {
                "rate_limits": {"enabled": False},
                "namespaces": {NAMESPACE: {"backends": [{"name": "bench-1", "url": backend_url}]}},
            }
        )
    )
    gateway = ManagedProcess(
        [sys.executable, "-m", "app", "serve", "--config", str(config), "--host", LOOPBACK, "--port", str(port), "--log-level", log_level],
        logs / "gateway.log",
        env={"MCP_GATEWAY_METRICS_PORT": "0"},
        cwd=ROOT,
    ).start()
    procs.append(gateway)
    base = f"http://{LOOPBACK}:{port}"
    gateway.wait_ready(lambda: http_status(f"{base}/readyz") == 200, START_TIMEOUT, "gateway not ready")
    ws_url = f"ws://{LOOPBACK}:{port}/ws"

    port = free_port()
    bridge = ManagedProcess(
        [
            sys.executable,
            "-m",
            "app.tcp_bridge",
            "--listen",
            f"{LOOPBACK}:{port}",
            "--gateway",
            ws_url,
            "--metrics-port",
            "0",
            "--log-level",
            log_level,
        ],
        logs / "bridge.log",
        cwd=ROOT,
    ).start()
    procs.append(bridge)
    bridge.wait_ready(lambda: tcp_accepts(LOOPBACK, port), START_TIMEOUT, "bridge did not listen")
    pids = {"backend": backend.pid, "gateway": gateway.pid, "bridge": bridge.pid}
    return pids, ws_url, (LOOPBACK, port)  # type: ignore[return-value]


# -- the two kinds of worker -----------------------------------------------------------------------
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
}


class CallFailed(RuntimeError):
    pass


def check(message: dict, text: str) -> None:
    result = message.get("result")
    if not result or result.get("isError") or result["content"][0].get("text") != text:
        raise CallFailed(f"unexpected answer: {str(message)[:300]}")


class WsWorker:
    """One `/ws` connection; calls matched by id (several may be in flight with --pipeline)."""

    def __init__(self, url: str, index: int):
        self.url = url
        self.text = f"worker {index} says hello"
        self.next_id = 0
        self.waiting: dict[int, asyncio.Future[dict]] = {}

    async def open(self) -> None:
        self.ws = await ws_connect(self.url, subprotocols=["mcp"], compression=None, proxy=None, max_size=None)  # type: ignore[list-item]
        await self.ws.send(orjson.dumps(INIT), text=True)
        if "result" not in orjson.loads(await self.ws.recv()):
            raise CallFailed("initialize failed")
        await self.ws.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}', text=True)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = orjson.loads(raw)
            future = self.waiting.pop(message.get("id"), None)
            if future is not None:
                future.set_result(message)

    async def call(self) -> None:
        self.next_id += 1
        request_id = self.next_id
        future: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        await self.ws.send(
            orjson.dumps(
                {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": TOOL, "arguments": {"text": self.text}}}
            ),
            text=True,
        )
        check(await future, self.text)

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


class TcpWorker:
    """One MCPB connection to the bridge."""

    def __init__(self, address: tuple[str, int], index: int):
        self.address = address
        self.text = f"worker {index} says hello"

    async def open(self) -> None:
        self.client = await MCPBClient.connect(*self.address)
        await self.client.initialize()

    async def call(self) -> None:
        check(await self.client.request("tools/call", {"name": TOOL, "arguments": {"text": self.text}}), self.text)

    async def close(self) -> None:
        await self.client.close()


# -- a case ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    transport: str
    concurrency: int
    pipeline: int
    calls: int
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_call: dict[str, float] = field(default_factory=dict)


async def run_case(
    transport: str,
    make: Callable[[int], WsWorker | TcpWorker],
    concurrency: int,
    pipeline: int,
    warmup: float,
    duration: float,
    pids: dict[str, int],
) -> Result:
    workers = [make(i) for i in range(concurrency)]
    await asyncio.gather(*(w.open() for w in workers))
    latencies: list[float] = []
    phase = {"measuring": False, "stop": False}

    async def loop(call: Callable[[], Awaitable[None]]) -> None:
        while not phase["stop"]:
            started = time.perf_counter()
            await call()
            if phase["measuring"] and not phase["stop"]:
                latencies.append(time.perf_counter() - started)

    tasks = [asyncio.create_task(loop(w.call)) for w in workers for _ in range(pipeline)]
    try:
        await asyncio.sleep(warmup)
        watched = {name: pid for name, pid in pids.items() if transport == "tcp" or name != "bridge"}
        before = {name: cpu_seconds(pid) for name, pid in watched.items()}
        client_before = time.process_time()
        phase["measuring"] = True
        started = time.perf_counter()
        deadline = started + duration
        while time.perf_counter() < deadline:
            failed = [t for t in tasks if t.done()]
            if failed:
                failed[0].result()
            await asyncio.sleep(0.05)
        phase["stop"] = True
        elapsed = time.perf_counter() - started
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in watched.items()}
        cpu["client"] = time.process_time() - client_before
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)
    if not latencies:
        raise CallFailed(f"{transport} c={concurrency}: no call completed")
    ordered = sorted(latencies)
    return Result(
        transport,
        concurrency,
        pipeline,
        len(ordered),
        round(elapsed, 3),
        len(ordered) / elapsed,
        statistics.median(ordered) * 1000,
        percentile(ordered, 0.99) * 1000,
        {name: round(seconds * 1000 / len(ordered), 3) for name, seconds in cpu.items()},
    )


async def bench(args: argparse.Namespace, ws_url: str, bridge: tuple[str, int], pids: dict[str, int]) -> list[Result]:
    makers: dict[str, Callable[[int], WsWorker | TcpWorker]] = {
        "ws": lambda i: WsWorker(ws_url, i),
        "tcp": lambda i: TcpWorker(bridge, i),
    }
    results = []
    for c in args.levels:
        for round_number in range(args.rounds):
            order = ("ws", "tcp") if round_number % 2 == 0 else ("tcp", "ws")
            for transport in order:
                result = await run_case(transport, makers[transport], c, args.pipeline, args.warmup, args.duration, pids)
                print(
                    f"  {transport:<4} c={c:<3} x{args.pipeline}  {result.throughput:8.0f} calls/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms",
                    flush=True,
                )
                results.append(result)
    return results


def summarize(results: list[Result]) -> list[dict[str, object]]:
    rows = []
    for c in sorted({r.concurrency for r in results}):
        row: dict[str, object] = {"concurrency": c}
        for transport in ("ws", "tcp"):
            mine = [r for r in results if r.concurrency == c and r.transport == transport]
            row[transport] = {
                "throughput": round(statistics.mean(r.throughput for r in mine), 1),
                "p50_ms": round(statistics.mean(r.p50_ms for r in mine), 3),
                "p99_ms": round(statistics.mean(r.p99_ms for r in mine), 3),
                "cpu_ms_per_call": {
                    k: round(statistics.mean(r.cpu_ms_per_call.get(k, 0) for r in mine), 3) for k in mine[0].cpu_ms_per_call
                },
            }
        rows.append(row)
    return rows


def print_report(rows: list[dict[str, object]], args: argparse.Namespace, load: tuple[float, float]) -> None:
    print()
    print(
        f"tools/call echo through the gateway: {args.duration:g} s per case after {args.warmup:g} s warm-up, "
        f"{args.rounds} round(s) alternating, {args.pipeline} call(s) in flight per connection"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
        f"load average before {load[0]:.2f} / after {load[1]:.2f}"
    )
    head = f"{'c':>4}  {'transport':<9} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}   CPU ms per call"
    print(head)
    print("-" * (len(head) + 50))
    for row in rows:
        for transport in ("ws", "tcp"):
            r = row[transport]  # type: ignore[index]
            cpu = "  ".join(f"{k} {v:.2f}" for k, v in r["cpu_ms_per_call"].items())  # type: ignore[index]
            print(f"{row['concurrency']:>4}  {transport:<9} {r['throughput']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}   {cpu}")  # type: ignore[index]
        ws, tcp = row["ws"], row["tcp"]  # type: ignore[index]
        print(
            f"      tcp/ws: throughput {tcp['throughput'] / ws['throughput']:.0%}, "  # type: ignore[index]
            f"p50 {tcp['p50_ms'] - ws['p50_ms']:+.2f} ms, p99 {tcp['p99_ms'] - ws['p99_ms']:+.2f} ms"
        )  # type: ignore[index]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="tools/call over MCPB/TCP vs WebSocket through the gateway, on loopback")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per case (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each case (default 2)")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated connection counts (default 1,16)")
    parser.add_argument("--pipeline", type=int, default=1, help="calls in flight per connection (default 1)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each pair, alternating the order (default 1)")
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="gateway and bridge")
    parser.add_argument("--json", dest="json_out", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.levels or min(args.levels) < 1 or args.duration <= 0 or args.pipeline < 1 or args.rounds < 1:
        parser.error("concurrency, pipeline and rounds must be positive; duration > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="tcp-vs-ws-"))
    procs: list[ManagedProcess] = []
    load_before = os.getloadavg()[0]
    try:
        pids, ws_url, bridge = start_all(logs, args.log_level, procs)
        print(
            f"gateway {ws_url} (pid {pids['gateway']}), bridge {bridge[0]}:{bridge[1]} (pid {pids['bridge']}), "
            f"backend pid {pids['backend']}",
            flush=True,
        )
        budget = (args.warmup + args.duration + 20) * 2 * args.rounds * len(args.levels) + 30
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            loop_factory = None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            results = runner.run(asyncio.wait_for(bench(args, ws_url, bridge, pids), budget))
        rows = summarize(results)
        print_report(rows, args, (load_before, os.getloadavg()[0]))
        if args.json_out:
            Path(args.json_out).write_text(
                json.dumps(
                    {
                        "settings": {k: v for k, v in vars(args).items() if k != "json_out"},
                        "cpus": os.cpu_count(),
                        "results": [asdict(r) for r in results],
                        "summary": rows,
                    },
                    indent=2,
                )
            )
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception:
        for proc in procs:
            print(proc.describe(), file=sys.stderr)
        raise
    finally:
        for proc in reversed(procs):
            proc.stop()
        for path in logs.iterdir():
            path.unlink()
        logs.rmdir()


if __name__ == "__main__":
    sys.exit(main())
