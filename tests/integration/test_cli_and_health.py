"""The command line, configuration validation, the embedded default and the health endpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from app.config import ConfigError, load_config, parse_config
from app.demo import sdk_problem as demo_sdk_problem
from tests.support import (
    ManagedProcess,
    free_port,
    http_status,
    start_gateway,
    stdio_command,
    wait_until,
)
from tests.support.mcp_http import RawSession
from tests.support.paths import REPO_ROOT

REPO = REPO_ROOT
MCP_GATEWAY = Path(sys.executable).parent / "mcp-gateway"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `mcp-gateway` script, running this checkout's `app` (an editable install may
    point elsewhere, and a script does not import from its working directory)."""
    environment = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO)}
    return subprocess.run([str(MCP_GATEWAY), *args], capture_output=True, text=True, timeout=30, env=environment, cwd=REPO)


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_check_config_accepts_the_documented_example(tmp_path: Path) -> None:
    example = write(
        tmp_path / "gateway.yaml",
        {
            "redis_url": "redis://127.0.0.1:6379/0",
            "tool_separator": "__",
            "session_ttl_seconds": 3600,
            "namespaces": {
                "weather": {
                    "backends": [
                        {"name": "weather-1", "url": "http://127.0.0.1:9001/mcp"},
                        {"name": "weather-2", "url": "ws://127.0.0.1:9002/mcp"},
                    ]
                },
                "files": {"prefix": False, "backends": [{"name": "files-1", "command": ["python", "-m", "some_server"], "env": {}}]},
            },
        },
    )
    result = run_cli("check-config", str(example))
    assert result.returncode == 0, result.stderr
    assert "OK (2 namespaces, 3 backends)" in result.stdout


def test_check_config_names_every_problem_with_its_key(tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.yaml",
        {
            "redis_url": "http://not-redis",
            "session_ttl_seconds": "soon",
            "colour": "blue",
            "namespaces": {
                "a__b": {"backends": [{"name": "x", "url": "ftp://example/mcp"}]},
                "c": {"backends": [{"name": "y", "url": "http://h/mcp", "command": ["srv"]}]},
                "d": {"backends": []},
            },
        },
    )
    result = run_cli("check-config", str(bad))
    assert result.returncode == 1
    lines = result.stderr
    for expected in (
        "redis_url: must be a redis://",
        "session_ttl_seconds:",
        "colour: unknown key",
        "namespaces.a__b.backends.0.url: must be an http(s)://",
        "namespaces.c.backends.0: set exactly one of 'url'",
        "namespaces.d.backends:",
    ):
        assert expected in lines, f"{expected!r} missing from:\n{lines}"


def test_check_config_reports_unreadable_and_malformed_files(tmp_path: Path) -> None:
    assert run_cli("check-config", str(tmp_path / "missing.yaml")).returncode == 1
    broken = write(tmp_path / "broken.yaml", "namespaces: [unclosed")
    result = run_cli("check-config", str(broken))
    assert result.returncode == 1 and "not valid YAML" in result.stderr


DUPLICATED = """\
namespaces:
  alpha:
    backends:
      - {name: alpha-1, url: "http://127.0.0.1:9001/mcp"}
port: 8080
namespaces:
  beta:
    backends:
      - name: beta-1
        url: "http://127.0.0.1:9002/mcp"
        url: "http://127.0.0.1:9003/mcp"
"""


def test_a_key_given_twice_is_refused_with_both_lines_by_check_config_and_serve(tmp_path: Path) -> None:
    path = write(tmp_path / "twice.yaml", DUPLICATED)
    expected = [
        "namespaces: duplicate key at line 6 (first at line 1); give each key once",
        "namespaces.beta.backends.0.url: duplicate key at line 11 (first at line 10); give each key once",
    ]
    result = run_cli("check-config", str(path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{path}: {line}" for line in expected] + [f"{path}: 2 problem(s) found"]
    served = run_cli("serve", "--config", str(path), "--port", str(free_port()))
    assert served.returncode == 2
    assert [line for line in served.stderr.splitlines() if line.startswith("config error: ")] == [
        f"config error: {line}" for line in expected
    ]


def test_field_and_cross_field_problems_are_reported_together_one_per_line(tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.yaml",
        {
            "host": "0.0.0.0",  # no authentication off loopback: cross-field
            "port": 9090,  # the metrics port's default: cross-field
            "session_ttl_seconds": "soon",  # a field error
            "namespcaes": {},  # a misspelt key
            "rate_limits": {"namespaces": {"nowhere": "5/minute"}, "per_ipp": "1/second"},
            "namespaces": {
                "a__b": {"backends": [{"name": "same", "url": "ftp://h/mcp"}]},
                "c": {"backends": [{"name": "same", "url": "http://h/mcp", "timeout_secs": 3}]},
            },
        },
    )
    result = run_cli("check-config", str(bad))
    assert result.returncode == 1
    lines = [line.removeprefix(f"{bad}: ") for line in result.stderr.splitlines()]
    assert sorted(lines[:-1]) == sorted(
        [
            "session_ttl_seconds: Input should be a valid integer, unable to parse string as an integer",
            "namespcaes: unknown key; did you mean 'namespaces'?",
            "rate_limits.per_ipp: unknown key; did you mean 'per_ip'?",
            "namespaces.a__b.backends.0.url: must be an http(s):// (Streamable HTTP) or ws(s):// (WebSocket) URL",
            "namespaces.c.backends.0.timeout_secs: unknown key; did you mean 'timeout_seconds'?",
            "auth.mode: 'none' is only allowed when the gateway binds a loopback address, not '0.0.0.0'; configure jwt or api_key",
            "metrics_port: 9090 is also the gateway's port; use another one (or 0 to turn metrics off)",
            "rate_limits.namespaces: no such namespace: 'nowhere'",
            "namespaces.a__b: name contains the tool separator '__'",
            "namespaces.c.backends: backend name 'same' is already used in namespace 'a__b'",
        ]
    )
    assert lines[-1] == "10 problem(s) found"
    # The gateway refuses to start for the same problems (its --port moves it off the metrics port).
    served = run_cli("serve", "--config", str(bad), "--port", str(free_port()))
    assert served.returncode == 2
    refused = [line.removeprefix("config error: ") for line in served.stderr.splitlines() if line.startswith("config error: ")]
    assert sorted(refused) == sorted(line for line in lines[:-1] if not line.startswith("metrics_port:"))


def test_an_unknown_key_far_from_every_known_one_gets_no_suggestion() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, environ={}, overrides={"colour": "blue", "auth": {"mode": "jwt", "jwtt": {}}})
    assert "colour: unknown key" in error.value.problems
    assert "auth.jwtt: unknown key; did you mean 'jwt'?" in error.value.problems


def test_duplicate_backend_names_and_separator_in_namespace_are_errors() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            None,
            environ={},
            overrides={
                "namespaces": {
                    "a": {"backends": [{"name": "same", "url": "http://h/mcp"}]},
                    "b": {"backends": [{"name": "same", "url": "http://h/mcp"}]},
                }
            },
        )
    assert "'same' is already used in namespace 'a'" in str(error.value)


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "g.yaml",
        {
            "host": "127.0.0.1",
            "port": 1111,
            "redis_url": "redis://file:6379/0",
            "namespaces": {"n": {"backends": [{"name": "n-1", "url": "http://h/mcp"}]}},
        },
    )
    config = load_config(
        None,
        environ={
            "MCP_GATEWAY_CONFIG": str(path),
            "MCP_GATEWAY_PORT": "2222",
            "MCP_GATEWAY_HOST": "127.0.0.2",
            "MCP_GATEWAY_REDIS_URL": "redis://env:6379/1",
        },
    )
    assert (config.port, config.host, config.redis_url) == (2222, "127.0.0.2", "redis://env:6379/1")
    assert load_config(path, overrides={"port": 3333}, environ={"MCP_GATEWAY_PORT": "2222"}).port == 3333


def test_python_dash_m_app_is_the_same_command() -> None:
    via_module = subprocess.run([sys.executable, "-m", "app", "--help"], capture_output=True, text=True, cwd=REPO, timeout=30)
    assert via_module.returncode == 0
    assert {"serve", "check-config"} <= set(via_module.stdout.split())
    assert run_cli("--help").stdout == via_module.stdout


def test_serve_refuses_an_invalid_configuration_with_the_key_named(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", {"namespaces": {"n": {"backends": [{"name": "n-1"}]}}})
    result = run_cli("serve", "--config", str(bad), "--port", str(free_port()))
    assert result.returncode == 2
    assert "namespaces.n.backends.0: set exactly one of 'url'" in result.stderr


def test_the_embedded_default_serves_the_demo_backends(tmp_path: Path) -> None:
    """The quick start: no configuration, no Redis, nothing else to start."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    env["MCP_GATEWAY_METRICS_PORT"] = "0"
    proc = ManagedProcess([str(MCP_GATEWAY), "serve", "--port", str(port)], tmp_path / "quickstart.log", env=env, cwd=REPO).start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_ready(lambda: http_status(f"{url}/readyz") == 200, 20, "quick-start gateway not ready")
        session = RawSession(url)
        session.initialize()
        tools = {t["name"] for t in session.call("tools/list", {})["result"]["tools"]}
        assert {"weather__get_forecast", "notes__add_note"} <= tools
        forecast = session.call("tools/call", {"name": "weather__get_forecast", "arguments": {"city": "Oslo", "days": 1}})
        assert "Oslo" in forecast["result"]["content"][0]["text"] or forecast["result"]["isError"] is False
        health = httpx.get(f"{url}/health").json()
        assert health == {
            "status": "healthy",
            "backends": {"weather": "healthy", "notes": "healthy"},
            "redis": "not_configured",
            "sessions_active": 1,
        }
    finally:
        proc.stop()


def test_the_embedded_default_without_the_demo_extra_exits_saying_what_to_install(tmp_path: Path) -> None:
    """`pip install mcp-gateway` without `[demo]`: one clear line at start-up, not broken calls later."""
    without_sdk = "import sys; sys.modules['mcp'] = None; from app.cli import main; sys.exit(main())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    result = subprocess.run(
        [sys.executable, "-c", without_sdk, "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "config error: the bundled demo servers (notes, weather) cannot start: the MCP SDK (package 'mcp') is not installed; "
        "install the demo extra: pip install 'mcp-gateway[demo]' (or serve your own servers: --config FILE)"
    ]


def test_only_configurations_running_the_demo_servers_need_their_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    own = {"namespaces": {"own": {"backends": [{"name": "own-1", "command": [sys.executable, "-m", "my_server"]}]}}}
    assert demo_sdk_problem(load_config(environ={})) is None  # The test environment has the demo extra.
    monkeypatch.setattr("app.demo.version", lambda _: "2.3.0")  # `pip install mcp` today: the 2.x line.
    assert "need the MCP SDK 1.x, and 2.3.0 is installed" in (demo_sdk_problem(load_config(environ={})) or "")
    monkeypatch.setitem(sys.modules, "mcp", None)
    assert demo_sdk_problem(parse_config(own)) is None


def test_readyz_is_503_until_backends_were_discovered(tmp_path: Path) -> None:
    slow = [sys.executable, "-c", "import time; time.sleep(4)"]  # Never answers initialize.
    port = free_port()
    config = write(tmp_path / "slow.yaml", {"namespaces": {"slow": {"backends": [{"name": "slow-1", "command": slow}]}}})
    env = {**os.environ, "MCP_GATEWAY_METRICS_PORT": "0"}
    proc = ManagedProcess(
        [str(MCP_GATEWAY), "serve", "--config", str(config), "--port", str(port)], tmp_path / "slow.log", env=env, cwd=REPO
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_ready(lambda: http_status(f"{url}/healthz") == 200, 20, "gateway not alive")
        assert http_status(f"{url}/readyz") == 503
        wait_until(lambda: http_status(f"{url}/readyz") == 200, timeout=20, message="never became ready")
        health = httpx.get(f"{url}/health")
        assert health.status_code == 503 and health.json()["backends"] == {"slow": "unhealthy"}
    finally:
        proc.stop()


def test_readyz_is_200_with_every_backend_down_and_health_reports_them(tmp_path: Path) -> None:
    """Readiness is this replica's own (discovery done, state store answering): a backend outage,
    which every replica shares, must not take them all out of the load balancer."""
    down = {"backends": [{"name": "gone-1", "url": "http://127.0.0.1:9/mcp"}]}
    gateway = start_gateway(
        {"namespaces": {"one": down, "two": {"backends": [{"name": "gone-2", "url": "ws://127.0.0.1:9/mcp"}]}}}, tmp_path
    )
    try:
        ready = httpx.get(f"{gateway.url}/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True, "state_store": "ok", "draining": False, "in_flight": 0}
        health = httpx.get(f"{gateway.url}/health")
        assert health.status_code == 503
        assert health.json() | {"sessions_active": 0} == {
            "status": "unhealthy",
            "backends": {"one": "unhealthy", "two": "unhealthy"},
            "redis": "not_configured",
            "sessions_active": 0,
        }
    finally:
        gateway.proc.stop()


def test_health_reports_a_degraded_namespace(tmp_path: Path) -> None:
    gateway = start_gateway(
        {
            "namespaces": {
                "ok": {"backends": [{"name": "ok-1", "command": stdio_command("ok")}]},
                "down": {"backends": [{"name": "down-1", "url": "http://127.0.0.1:9/mcp"}]},
            }
        },
        tmp_path,
    )
    try:
        response = httpx.get(f"{gateway.url}/health")
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        assert response.json()["backends"] == {"ok": "healthy", "down": "unhealthy"}
        assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "alive"}
    finally:
        gateway.proc.stop()
