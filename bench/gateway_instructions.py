"""Instructions the gateway executes per `tools/call`, counted by valgrind's callgrind.

    .venv/bin/python bench/gateway_instructions.py                      # 300 calls, this checkout
    .venv/bin/python bench/gateway_instructions.py --gateway-src /tmp/old --calls 500

Why: on a shared 2-vCPU machine, CPU-time and latency figures move by ±15 % from run to run with
what the neighbours and the hypervisor do (bench/gateway_bench.py reports that as steal). An
instruction count does not: the same code and workload give the same count within a fraction of
a percent, so a change to the hot path can be judged before the timed benchmark confirms it.

It starts the echo backend and one gateway under `valgrind --tool=callgrind` with instrumentation off,
opens one MCP session, warms up (uncounted), turns instrumentation on with
`callgrind_control`, makes --calls sequential `tools/call echo` calls, turns it off, dumps,
and prints the gateway's instructions per call (Ir). Telemetry and the rate limiter are on, as in
gateway_bench.py. Everything runs on loopback and is stopped at the end. Needs Debian's valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gateway_bench import NAMESPACE, UNREACHABLE_RATE, Worker, start_backend  # noqa: E402
from tests.support.net import LOOPBACK, free_port, http_status  # noqa: E402
from tests.support.process import ManagedProcess  # noqa: E402

#: Start-up under valgrind, even uninstrumented, is several times slower than without.
VALGRIND_START_TIMEOUT = 240.0


def start_gateway(backend_url: str, logs: Path, src: Path) -> tuple[ManagedProcess, str, Path]:
    port = free_port()
    config = {
        "namespaces": {NAMESPACE: {"backends": [{"name": f"{NAMESPACE}-1", "url": backend_url}]}},
        "rate_limits": {"per_ip": UNREACHABLE_RATE, "per_principal": UNREACHABLE_RATE},
    }
    config_path = logs / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    out = logs / "callgrind.out"
    args = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
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
    ]
    proc = ManagedProcess(args, logs / "gateway.log", env={"MCP_GATEWAY_METRICS_PORT": str(free_port())}, cwd=src).start()
    base = f"http://{LOOPBACK}:{port}"
    proc.wait_ready(lambda: http_status(f"{base}/readyz") == 200, VALGRIND_START_TIMEOUT, f"gateway not ready at {base}/readyz")
    return proc, f"{base}/mcp", out


def collect(pid: int, on: bool) -> None:
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(pid)], check=True, capture_output=True)


async def measure(url: str, pid: int, warmup: int, calls: int) -> None:
    worker = Worker(url, f"{NAMESPACE}__echo", 0)
    await worker.open()
    try:
        for _ in range(warmup):
            await worker.call()
        collect(pid, True)
        for _ in range(calls):
            await worker.call()
        collect(pid, False)
        subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)  # noqa: ASYNC221 (the measured loop is over)
    finally:
        await worker.close()


def total_instructions(out: Path) -> int:
    """The summed `Ir` of every dump callgrind wrote for the process."""
    total = 0
    for dump in out.parent.glob(out.name + "*"):
        match = re.search(r"^totals: (\d+)", dump.read_text(errors="replace"), re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="counted calls (default 300)")
    parser.add_argument("--warmup", type=int, default=50, help="uncounted calls first (default 50)")
    parser.add_argument("--gateway-src", type=Path, default=ROOT, metavar="DIR", help="run the gateway from this checkout")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("needs valgrind (Debian package valgrind)", file=sys.stderr)
        return 2
    logs = Path(tempfile.mkdtemp(prefix="gateway-instructions-"))
    procs: list[ManagedProcess] = []
    try:
        backend, backend_url = start_backend("echo", False, logs)
        procs.append(backend)
        started = time.monotonic()
        gateway, url, out = start_gateway(backend_url, logs, args.gateway_src.resolve())
        procs.append(gateway)
        print(f"gateway ready under callgrind in {time.monotonic() - started:.0f} s", flush=True)
        asyncio.run(measure(url, gateway.pid, args.warmup, args.calls))
    finally:
        for proc in reversed(procs):
            proc.stop()
    instructions = total_instructions(out)
    print(
        f"gateway from {args.gateway_src.resolve()}: {instructions / args.calls / 1e6:.3f} M instructions per "
        f"tools/call ({args.calls} calls, {instructions:,} Ir)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
