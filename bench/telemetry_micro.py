"""The telemetry of one request, alone, in-process: CPU per request with telemetry on and off.

    .venv/bin/python bench/telemetry_micro.py            # a few seconds

End-to-end figures (bench/telemetry_overhead.py) need a quiet machine; this one measures only the
code telemetry adds to a `tools/call` — the `gateway.handleRequest` scope, the pipeline's spans
(`circuitBreaker.allow`, `backend.call` with trace context carried into the message,
`circuitBreaker.record`), the three request metrics and the JSON log line — with the real SDK,
as main-thread CPU time (load on the machine barely moves it). Each mode runs in a fresh process;
the figures are the best and the median of 7 trials. Export (OTLP encoding on the exporter's
thread) is not included: see telemetry_overhead.py for that.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TRIAL = r"""
import asyncio, logging, os, sys, time
sys.path.insert(0, {root!r})
mode, n = {mode!r}, {n}
if mode == "off":
    os.environ["OTEL_SDK_DISABLED"] = "true"
from app.telemetry.logs import configure
configure("WARNING" if mode in ("off", "no-log") else "INFO")
logging.getLogger().handlers[0].stream = open(os.devnull, "w")
from app import telemetry
tel = telemetry.setup("micro", metrics_port=0)
from app.telemetry.requests import RequestScope

class Ctx:
    protocol, principal, client_address, headers = "http", "alice", "127.0.0.1", {{}}

class Event:
    def __init__(self, message): self.message = message

request = {{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {{"name": "web__echo", "arguments": {{"text": "x"}}}}}}
response = {{"jsonrpc": "2.0", "id": 1, "result": {{"content": [], "isError": False}}}}
breakers = mode != "no-breaker-spans"

async def pipeline(scope):
    if breakers:
        with telemetry.span(telemetry.BREAKER_ALLOW, namespace="web", backend="web-1", user="alice"):
            pass
    scope.route("web", "web-1")
    call = telemetry.start_span(telemetry.BACKEND_CALL, namespace="web", backend="web-1", user="alice", method="tools/call")
    telemetry.carry(call, request, {{}})
    if breakers:
        with telemetry.span(telemetry.BREAKER_RECORD, namespace="web", backend="web-1", user="alice"):
            pass
    call.end()
    yield Event(response)

async def one():
    scope = RequestScope(Ctx(), request, "session", "2025-11-25")
    async for _ in scope.run(pipeline(scope)):
        pass

async def main():
    for _ in range(300):
        await one()
    trials = []
    for _ in range(7):
        started = time.thread_time()
        for _ in range(n):
            await one()
        trials.append((time.thread_time() - started) / n * 1e6)
    trials.sort()
    print(f"{{trials[0]:.1f}} {{trials[3]:.1f}}")

asyncio.run(main())
"""

MODES = {
    "off": "OTEL_SDK_DISABLED=true (no-op instruments and tracer, no log line)",
    "on": "spans, metrics and the request's log line (no export)",
    "no-breaker-spans": "on, without the two circuit-breaker spans",
    "no-log": "on, without the request's log line",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per trial (default 2000)")
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; main-thread CPU per request, best / median of 7 trials of {args.requests}"
    )
    results = {}
    for mode, what in MODES.items():
        out = subprocess.run(
            [sys.executable, "-c", TRIAL.format(root=str(ROOT), mode=mode, n=args.requests)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout.split()
        results[mode] = (float(out[0]), float(out[1]))
        print(f"  {mode:<17} {results[mode][0]:7.1f} / {results[mode][1]:7.1f} µs   {what}")
    best = {mode: value[0] for mode, value in results.items()}
    print(
        f"\ntelemetry adds {best['on'] - best['off']:.0f} µs of CPU per request: the two circuit-breaker spans "
        f"{best['on'] - best['no-breaker-spans']:.0f} µs, the log line {best['on'] - best['no-log']:.0f} µs, the rest "
        f"(server and backend.call spans, context, metrics) {best['no-breaker-spans'] + best['no-log'] - best['on'] - best['off']:.0f} µs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
