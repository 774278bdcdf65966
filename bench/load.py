"""Sustained load through two gateway replicas sharing one Redis, with auth and rate limiting on.

    .venv/bin/python bench/load.py                 # 200 WebSocket sessions + 50 HTTP clients, 60 s
    .venv/bin/python bench/load.py --duration 20   # shorter

Starts on 127.0.0.1 only: a redis-server, one SDK backend (tests/servers/everything.py over
Streamable HTTP), two gateway replicas (API-key auth, rate limits on with budgets the run stays
under). WebSocket sessions are spread over both replicas; each HTTP client initializes on one
replica and then alternates its calls between the two with the same Mcp-Session-Id, so every
call exercises the shared session state. Every session paces its `tools/call echo` calls
(--ws-interval, --http-interval) so the offered load is steady rather than a saturation test.

Reports calls, errors (goal: zero), p50/p99 latency per edge, and peak RSS (VmHWM) per replica.
It stops by itself and stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import percentile
from tests.support import RedisServer, start_backend, start_gateway

API_KEY = "bench-load-key"
VERSION = "2025-11-25"
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "load", "version": "1"}},
}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json", "authorization": f"Bearer {API_KEY}"}


class Stats:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {"websocket": [], "http": []}
        self.errors: dict[str, int] = {}

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def call(request_id: int, text: str) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": "load__echo", "arguments": {"text": text}}}


def last_message(response: httpx.Response) -> dict:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return orjson.loads(data[-1])
    return response.json()


async def ws_session(url: str, deadline: float, interval: float, stats: Stats, offset: float) -> None:
    await asyncio.sleep(offset)  # Spread the start so the load is steady, not a thundering herd.
    try:
        async with websockets.connect(url, subprotocols=["mcp"], additional_headers={"authorization": f"Bearer {API_KEY}"}) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps(INIT))
            await ws.recv()
            request_id = 0
            while time.monotonic() < deadline:
                request_id += 1
                started = time.perf_counter()
                await ws.send(json.dumps(call(request_id, f"w{request_id}")))
                answer = json.loads(await ws.recv())
                if answer.get("result", {}).get("content", [{}])[0].get("text") == f"w{request_id}":
                    stats.latencies["websocket"].append(time.perf_counter() - started)
                else:
                    stats.error(f"websocket: {answer.get('error', answer)}"[:120])
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
    except Exception as exc:
        stats.error(f"websocket connection: {type(exc).__name__}: {exc}"[:120])


async def http_client(urls: list[str], deadline: float, interval: float, stats: Stats, offset: float) -> None:
    await asyncio.sleep(offset)
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            init = await client.post(urls[0], content=orjson.dumps(INIT), headers=HEADERS)
            headers = {**HEADERS, "mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": VERSION}
            await client.post(urls[0], content=b'{"jsonrpc":"2.0","method":"notifications/initialized"}', headers=headers)
        except Exception as exc:
            stats.error(f"http initialize: {type(exc).__name__}")
            return
        request_id = 0
        while time.monotonic() < deadline:
            request_id += 1
            started = time.perf_counter()
            try:
                response = await client.post(
                    urls[request_id % 2], content=orjson.dumps(call(request_id, f"h{request_id}")), headers=headers
                )
                answer = last_message(response)
                if response.status_code == 200 and answer.get("result", {}).get("content", [{}])[0].get("text") == f"h{request_id}":
                    stats.latencies["http"].append(time.perf_counter() - started)
                else:
                    stats.error(f"http {response.status_code}: {answer.get('error', answer)}"[:120])
            except Exception as exc:
                stats.error(f"http: {type(exc).__name__}")
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))


def peak_rss_mib(pid: int | None) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(args: argparse.Namespace, gateways: list[str]) -> Stats:
    stats = Stats()
    deadline = time.monotonic() + args.duration
    ws_urls = [g.replace("http://", "ws://") + "/ws" for g in gateways]
    mcp_urls = [g + "/mcp" for g in gateways]
    tasks = [ws_session(ws_urls[i % 2], deadline, args.ws_interval, stats, args.ws_interval * i / args.ws) for i in range(args.ws)]
    tasks += [
        http_client(mcp_urls[i % 2 :] + mcp_urls[: i % 2], deadline, args.http_interval, stats, args.http_interval * i / args.http)
        for i in range(args.http)
    ]
    await asyncio.gather(*tasks)
    return stats


def percentile_ms(values: list[float], q: float) -> float:
    return percentile(sorted(values), q) * 1000 if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--ws", type=int, default=200, help="concurrent WebSocket sessions")
    parser.add_argument("--http", type=int, default=50, help="concurrent HTTP clients")
    parser.add_argument("--ws-interval", type=float, default=2.0, help="seconds between a WebSocket session's calls")
    parser.add_argument("--http-interval", type=float, default=0.5, help="seconds between an HTTP client's calls")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mcp-load-") as tmp:
        work = Path(tmp)
        redis = RedisServer(work).start()
        backend = start_backend("load", work, "http")
        config = {
            "redis_url": redis.url,
            "auth": {"mode": "api_key", "api_keys": [{"sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "subject": "load"}]},
            "rate_limits": {"enabled": True, "per_principal": "1000000/minute", "per_ip": "1000000/minute"},
            "max_in_flight_per_connection": 16,
            "namespaces": {"load": {"backends": [{"name": "load-1", "url": backend.url}]}},
        }
        env = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
        replicas = [start_gateway(config, work, env), start_gateway(config, work, env)]
        try:
            started = time.monotonic()
            stats = asyncio.run(run(args, [r.url for r in replicas]))
            elapsed = time.monotonic() - started
            rss = [peak_rss_mib(r.proc.pid) for r in replicas]
        finally:
            for proc in [*(r.proc for r in replicas), backend.proc]:
                proc.stop()
            redis.stop()

    total_errors = sum(stats.errors.values())
    print(f"{args.ws} WebSocket sessions + {args.http} HTTP clients, {elapsed:.0f} s, 2 replicas on one Redis, auth + rate limits on")
    print(f"{'edge':10} {'calls':>7} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for edge, values in stats.latencies.items():
        print(
            f"{edge:10} {len(values):7d} {len(values) / elapsed:8.1f} {statistics.median(values) * 1000 if values else float('nan'):8.2f} {percentile_ms(values, 0.99):8.2f}"
        )
    print(f"peak RSS per replica (VmHWM): {', '.join(f'{m:.1f} MiB' for m in rss)}")
    print(f"errors: {total_errors}   [goal: zero: {'MET' if total_errors == 0 else 'MISSED'}]")
    for what, count in sorted(stats.errors.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {count:6d}  {what}")
    return 0 if total_errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
