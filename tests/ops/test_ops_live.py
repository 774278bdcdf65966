"""Every dashboard query, alert and recording rule, proven on live data.

A real gateway (JWT and API-key auth, rate limits, circuit breakers, Redis state, a certificate
to watch) and the TCP bridge in front of it serve real traffic of every kind that exists:
successful calls over Streamable HTTP, WebSocket and MCPB/TCP; errors (an unknown tool, a backend
answering HTTP 500); bad credentials; calls over a rate limit; a circuit breaker tripped by the
failing backend. A real Redis exporter (Debian's prometheus-redis-exporter) watches the test's
redis-server. A real Prometheus scrapes the three under the job names of
otel/prometheus/prometheus.yml, loads our rule files, and then every expression of the dashboards
and rules is evaluated through its HTTP API.

- No expression errors.
- Every expression over a feature that exists returns data: at least one sample that is a
  number. An empty result, or only NaN (a quantile or ratio over no observations), is a panel
  showing nothing. So the traffic runs twice with a scrape in between: every counter and
  histogram grows between two samples, and rates and quantiles are numbers, not 0/0.
- Alerts: an alert that is not firing returns nothing by design (its comparison filters), so
  checking only its emptiness would prove nothing. Each alert expression is evaluated as written
  (it must not error) and with every comparison given the `bool` modifier
  (`comparisons_as_bool`), which returns every series the alert compares, 1 where it would fire
  and 0 where not: its inputs exist, with the labels its `and`/`or` match on, and no threshold
  is faked to make it fire. This proves more than the rule's health in /api/v1/rules alone,
  which is "ok" even for an alert over a metric that does not exist; that health is checked too.
- Recording rules: the expression returns data, the series it records (its name and labels)
  exists, and the rule is healthy.
- What cannot have data here is listed by name below with the reason (NOT_BUILT must stay
  empty, so the list shrinks when the feature arrives; NEEDS_HISTORY needs more time than a test).
  An `absent()` alert returns nothing while what it watches is there: EMPTY_WHILE_HEALTHY names
  those; each must be empty here, and the same form is shown to fire for a job with no series.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from websockets.exceptions import InvalidStatus

from app.tcp_bridge.client import MCPBClient, RpcError
from tests.support import (
    LOOPBACK,
    GatewayProc,
    RedisServer,
    free_port,
    start_backend,
    start_gateway,
    wait_until,
)
from tests.support.bridge import BridgeProc, start_bridge, ws_url
from tests.support.certs import self_signed_certificate
from tests.support.guard import start_flaky, start_together
from tests.support.mcp_http import RawSession, messages
from tests.support.mcp_ws import WsSession
from tests.support.ops import (
    PROMETHEUS_CONFIG,
    RULE_FILES,
    Expression,
    PrometheusError,
    PrometheusServer,
    RedisExporter,
    ScrapeJob,
    all_expressions,
    comparisons_as_bool,
)
from tests.support.ops.promql import tokenize

GATEWAY_JOB = "mcp-gateway"
BRIDGE_JOB = "mcp-bridge"
REDIS_JOB = "redis"
JOBS = (GATEWAY_JOB, BRIDGE_JOB, REDIS_JOB)

SECRET = "live-test-secret-that-is-long-enough-for-hs256"
ISSUER = "https://issuer.test"
AUDIENCE = "mcp-gateway"
API_KEY = "mcpk_live_bridge_0123456789"
NAMESPACE_LIMIT = 2  # calls a day into `metered`, per caller
BREAKER_THRESHOLD = 2  # consecutive failures that open a replica's circuit

_ROUTER = "the router (app/router) has no metrics endpoint yet: no mcp_router_* series exist"
_ROUTER_DASHBOARD = "dashboards/mcp-router-overview.json"
#: Expressions over features that do not exist yet: they must return nothing. When one starts to
#: return data, remove it from here.
NOT_BUILT: dict[str, str] = {
    f"{_ROUTER_DASHBOARD}: row 'Requests' panel 'Request Rate' target A": _ROUTER,
    f"{_ROUTER_DASHBOARD}: row 'Requests' panel 'Request Latency' target A": _ROUTER,
    f"{_ROUTER_DASHBOARD}: row 'Requests' panel 'Error Rate' target A": _ROUTER,
    f"{_ROUTER_DASHBOARD}: row 'Connections' panel 'Active Connections' target A": _ROUTER,
    f"{_ROUTER_DASHBOARD}: row 'Connections' panel 'Connection pool' target A": _ROUTER,
    f"{_ROUTER_DASHBOARD}: row 'Connections' panel 'Connection errors and retries' target A": _ROUTER,
    f"{_ROUTER_DASHBOARD}: row 'Connections' panel 'Connection errors and retries' target B": _ROUTER,
    f"{_ROUTER_DASHBOARD}: row 'Auth, limits and keychain' panel 'Authentication failures' target A": _ROUTER,
    f"{_ROUTER_DASHBOARD}: row 'Auth, limits and keychain' panel 'Rate limit exceeded' target A": _ROUTER,
    f"{_ROUTER_DASHBOARD}: row 'Auth, limits and keychain' panel 'Keychain operations' target A": _ROUTER,
    f"{_ROUTER_DASHBOARD}: row 'Responses' panel 'Response size p95' target A": _ROUTER,
    f"{_ROUTER_DASHBOARD}: row 'Responses' panel 'Response bytes per second' target A": _ROUTER,
    f"{_ROUTER_DASHBOARD}: variable 'region'": _ROUTER,
    f"{_ROUTER_DASHBOARD}: variable 'instance'": _ROUTER,
    "dashboards/mcp-gateway.json: row 'Connection pool' panel 'Connection pool efficiency' target A": _ROUTER,
    "dashboards/mcp-gateway.json: row 'Cost' panel 'Data transfer estimate (GB)' target A": _ROUTER,
    "otel/prometheus/rules/mcp_recording.yml: record method_status:mcp_router_requests:rate5m": _ROUTER,
    'otel/prometheus/rules/mcp_recording.yml: record mcp_router_request_duration_seconds:quantile_rate5m{quantile="0.95"}': _ROUTER,
    "otel/prometheus/rules/mcp_alerts.yml: alert MCPConnectionPoolExhausted": _ROUTER,
}
#: Expressions that need more history than a test can make: evaluated (no error), data not required.
NEEDS_HISTORY: dict[str, str] = {
    "dashboards/mcp-gateway.json: row 'Capacity planning' panel 'Connection growth (30-day forecast)' target A": (
        "its [7d:5m] subquery takes a point every 5 minutes of wall-clock time and predict_linear needs "
        "two, so the data must span a 5-minute boundary"
    ),
}
#: Alerts on `absent(...)`: no series at all while what they watch exists (here, always), and
#: `bool` cannot show their inputs. They must return nothing; test_absent_fires_for_a_job_with_no_series
#: shows the form returns its series when nothing matches.
EMPTY_WHILE_HEALTHY: dict[str, str] = {
    "otel/prometheus/rules/mcp_alerts.yml: alert MCPGatewayAbsent": (
        f'absent(up{{job="{GATEWAY_JOB}"}}) is empty while a gateway is scraped, and this one is'
    ),
}
EXPRESSIONS = all_expressions()


@dataclass
class Live:
    prometheus: PrometheusServer
    gateway: GatewayProc
    bridge: BridgeProc
    certificate_subject: str


def _token(subject: str = "alice") -> str:
    claims = {"sub": subject, "scope": "mcp:*", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _gateway_config(web_url: str, sick_url: str, redis_url: str, certificate: Path) -> dict[str, Any]:
    return {
        "redis_url": redis_url,
        "auth": {
            "mode": ["jwt", "api_key"],
            "jwt": {"algorithms": ["HS256"], "secret_env": "LIVE_JWT_SECRET", "issuer": ISSUER, "audience": AUDIENCE},
            "api_keys": [{"sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "subject": "bridge-client"}],
        },
        "rate_limits": {"per_principal": "10000/day", "per_ip": None, "namespaces": {"metered": f"{NAMESPACE_LIMIT}/day"}},
        "breaker": {"failure_threshold": BREAKER_THRESHOLD, "min_calls": 100, "cooldown_seconds": 600},
        # Raw subjects, so the facts below can name the callers.
        "telemetry": {"certificate_files": [str(certificate)], "user_label": "raw"},
        "namespaces": {
            "web": {"backends": [{"name": "web-1", "url": web_url}]},
            "metered": {"backends": [{"name": "metered-1", "url": web_url}]},
            "sick": {"backends": [{"name": "sick-1", "url": sick_url}]},
        },
    }


# -- traffic -------------------------------------------------------------------------------------


def _error_code(message: dict[str, Any]) -> int | None:
    return (message.get("error") or {}).get("code")


def _http_traffic(base: str) -> None:
    """Streamable HTTP with a valid JWT: success, tool error, unknown tool, a failing backend until
    its circuit is open, a namespace over its rate limit, the session's end (DELETE); and a bad
    token (401)."""
    http = RawSession(base, client=httpx.Client(timeout=30, headers=_bearer(_token())))
    try:
        http.initialize()
        assert http.call("tools/call", {"name": "web__echo", "arguments": {"text": "hi"}})["result"]["isError"] is False
        assert http.call("tools/call", {"name": "web__fail", "arguments": {"message": "boom"}})["result"]["isError"] is True
        assert _error_code(http.call("tools/call", {"name": "nowhere__echo", "arguments": {}})) == -32602
        errors = []  # HTTP 500 from the backend until the circuit opens
        for _ in range(BREAKER_THRESHOLD + 1):
            errors.append(http.call("tools/call", {"name": "sick__echo", "arguments": {"text": "x"}})["error"])
            if (errors[-1].get("data") or {}).get("circuit") == "open":
                break
        assert errors[-1]["code"] == -32050 and errors[-1]["data"]["namespace"] == "sick", errors
        statuses = []
        for _ in range(NAMESPACE_LIMIT + 1):
            statuses.append(http.request("tools/call", {"name": "metered__echo", "arguments": {"text": "m"}}).status_code)
            if statuses[-1] == 429:
                break
        assert statuses[-1] == 429, statuses
        assert http.client.delete(http.url, headers=http.headers()).status_code == 204
    finally:
        http.close()
    refused = RawSession(base, client=httpx.Client(timeout=30, headers=_bearer("not-a-valid-token")))
    try:
        response = refused.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}})
        assert response.status_code == 401 and _error_code(messages(response)[-1]) == -32001
    finally:
        refused.close()


def _websocket_traffic(base: str) -> None:
    """WebSocket with a valid JWT (success and an unknown tool, then close: a session ends), and an
    upgrade with a bad token (refused with 401)."""
    with WsSession(ws_url(base), _bearer(_token())) as ws:
        ws.initialize()
        assert ws.call("tools/call", {"name": "web__add", "arguments": {"a": 1, "b": 2}})["result"]["isError"] is False
        assert _error_code(ws.call("tools/call", {"name": "nowhere__add", "arguments": {}})) == -32602
    with pytest.raises(InvalidStatus) as refused:
        WsSession(ws_url(base), _bearer("not-a-valid-token"))
    assert refused.value.response.status_code == 401


async def _tcp_traffic(bridge: BridgeProc) -> None:
    """MCPB through the bridge with an API key: success, an unknown tool, the health probe."""
    async with await MCPBClient.connect(bridge.host, bridge.port, auth_token=API_KEY) as client:
        await client.initialize()
        result = await client.call("tools/call", {"name": "web__echo", "arguments": {"text": "tcp"}})
        assert result["isError"] is False
        with pytest.raises(RpcError):
            await client.call("tools/call", {"name": "nowhere__echo", "arguments": {}})
        assert (await client.health())["status"] == "healthy"


def _traffic(gateway: GatewayProc, bridge: BridgeProc) -> None:
    _http_traffic(gateway.url)
    _websocket_traffic(gateway.url)
    asyncio.run(_tcp_traffic(bridge))


def _wait_for_scrapes_after(prometheus: PrometheusServer, moment: float) -> None:
    """Until every target has been scraped after `moment` (unix seconds). (`timestamp` of a bare
    selector is the scrape's time; of anything computed, it would be the query's.)"""
    targets = f'up{{job=~"{"|".join(JOBS)}"}}'
    prometheus.wait_for_series(f"count({targets} == 1) == {len(JOBS)} and min(timestamp({targets})) > {moment:.3f}", timeout=20)


# -- evaluation ----------------------------------------------------------------------------------


def _probes(expression: Expression) -> dict[str, str]:
    """The queries that must return data for `expression`: itself (an alert with its comparisons
    made `bool`) and, for a recording rule, the series it records."""
    probes = {"expression": comparisons_as_bool(expression.expr) if expression.kind == "alert" else expression.expr}
    if expression.records:
        probes["recorded series"] = expression.records
    return probes


def _has_data(result: list[dict[str, Any]]) -> bool:
    """At least one sample that is a number (NaN is a panel showing nothing)."""
    return any(not math.isnan(float(sample["value"][1])) for sample in result)


def _expects_data(expression: Expression) -> bool:
    return not any(str(expression) in listed for listed in (NOT_BUILT, NEEDS_HISTORY, EMPTY_WHILE_HEALTHY))


def _settled(prometheus: PrometheusServer) -> bool:
    """Every expression that should have data has it (and what it records, for a recording rule)."""
    return all(
        _has_data(prometheus.query(probe))
        for expression in EXPRESSIONS
        if _expects_data(expression)
        for probe in _probes(expression).values()
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp("ops-live")
    if not redis_server.running:
        redis_server.start()
    redis_server.flushdb()  # rate-limit windows are per day: start with none spent
    gateway_metrics, bridge_metrics = free_port(), free_port()
    with ExitStack() as stack:
        redis_exporter = stack.enter_context(RedisExporter(redis_server.url, workdir))
        prometheus = stack.enter_context(
            PrometheusServer(
                [
                    ScrapeJob(GATEWAY_JOB, [f"{LOOPBACK}:{gateway_metrics}"]),
                    ScrapeJob(BRIDGE_JOB, [f"{LOOPBACK}:{bridge_metrics}"]),
                    ScrapeJob(REDIS_JOB, [redis_exporter.address]),
                ],
                workdir / "prometheus",
                rule_files=RULE_FILES,
            )
        )
        web, sick = start_together(lambda: start_backend("web", workdir), lambda: start_flaky(workdir, "sick"))
        stack.callback(web.proc.stop)
        stack.callback(sick.proc.stop)
        certificate, subject = self_signed_certificate(workdir, "gateway.live.test", days=90)
        gateway = start_gateway(
            _gateway_config(web.url, sick.url, redis_server.url, certificate),
            workdir,
            env={"LIVE_JWT_SECRET": SECRET, "MCP_GATEWAY_METRICS_PORT": str(gateway_metrics)},
        )
        stack.callback(gateway.proc.stop)
        bridge = start_bridge(workdir, ws_url(gateway.url), "--metrics-port", str(bridge_metrics))
        stack.callback(bridge.proc.stop)

        # Round one makes the series; a scrape; round two makes them grow; rules evaluate.
        _traffic(gateway, bridge)
        _wait_for_scrapes_after(prometheus, time.time())
        _traffic(gateway, bridge)
        _wait_for_scrapes_after(prometheus, time.time())
        prometheus.wait_for_rule_evaluation(timeout=20)
        try:
            wait_until(lambda: _settled(prometheus), timeout=30, interval=0.5)
        except TimeoutError:
            pass  # each expression's own test names what has no data
        yield Live(prometheus, gateway, bridge, subject)


# -- the proof -----------------------------------------------------------------------------------


def test_the_scrape_jobs_are_the_ones_operators_run() -> None:
    jobs = {job["job_name"] for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]}
    assert set(JOBS) <= jobs


def test_the_traffic_of_every_kind_reached_prometheus(live: Live) -> None:
    """The stack did what the proof relies on: every target up, every edge, auth refusals,
    rate-limit refusals, the breaker open, the certificate watched."""
    facts = {
        "every target up": f'sum(up{{job=~"{"|".join(JOBS)}"}}) == {len(JOBS)}',
        "the exporter reaches Redis": f'redis_up{{job="{REDIS_JOB}"}} == 1',
        "latency per edge": 'count(count by (protocol) (mcp_gateway_request_duration_seconds_count{protocol=~"http|websocket|tcp"})) == 3',
        "TCP frames both ways": f'count(count by (direction) (mcp_gateway_tcp_frames_total{{job="{BRIDGE_JOB}"}})) == 2',
        "auth failures and successes": "count(count by (result) (mcp_gateway_auth_attempts_total)) == 2",
        "rate limit remaining per user": 'count(mcp_gateway_rate_limit_remaining{user=~"alice|bridge-client"}) == 2',
        "rate-limit refusals": 'sum(mcp_server_operation_duration_seconds_count{error_type="-32029"}) > 0',
        # A call refused by the namespace's limit counts under that namespace, not `_gateway`.
        # A refusal of the caller is its own doing: `client_error`, not an `error` of the service.
        "rate-limit refusals under their namespace": 'sum(mcp_gateway_requests_total{namespace="metered", status="client_error"}) > 0',
        "breaker open": 'mcp_gateway_circuit_breaker_state{namespace="sick", state="open"} == 1',
        # Round two's calls into `sick` are all refused by the open circuit: they count under
        # their namespace (so "Errors by namespace and method" shows it), not under `_gateway`.
        "circuit-open refusals under their namespace": 'rate(mcp_gateway_requests_total{namespace="sick", status="error"}[5m]) > 0',
        "errors counted": 'sum(mcp_gateway_requests_total{status="error"}) > 0',
        "sessions ended": "mcp_gateway_session_duration_seconds_count > 0",
        "redis operations": "count(mcp_gateway_redis_operations_duration_seconds_count) > 0",
        "certificate watched": f'x509_cert_expiry{{subject="{live.certificate_subject}"}} - time() > 89 * 86400',
    }
    missing = [name for name, query in facts.items() if not live.prometheus.query(query)]
    assert not missing, f"{missing}\ntargets: {live.prometheus.target_health()}"


def test_every_rule_is_loaded_and_evaluates_healthy(live: Live) -> None:
    groups = live.prometheus.rule_groups()
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == sum(1 for e in EXPRESSIONS if e.kind in ("alert", "record"))
    unhealthy = [
        f"{rule['name']}: {rule['health']} {rule.get('lastError', '')}" for rule in rules if rule["health"] != "ok" or rule.get("lastError")
    ]
    assert not unhealthy


def test_comparisons_as_bool_keeps_every_compared_series() -> None:
    expr = '(a{x!="y"} > 0.5 and b == bool 1) or c <= (2 * 3)'
    assert comparisons_as_bool(expr) == '(a{x!="y"} > bool 0.5 and b == bool 1) or c <= bool (2 * 3)'


def test_the_allow_lists_name_expressions_that_exist() -> None:
    names = {str(e) for e in EXPRESSIONS}
    lists = (set(NOT_BUILT), set(NEEDS_HISTORY), set(EMPTY_WHILE_HEALTHY))
    assert all(listed <= names for listed in lists)
    assert sum(map(len, lists)) == len(set().union(*lists)), "an expression is on two lists"
    absent = {str(e) for e in EXPRESSIONS if e.kind == "alert" and any(t.text == "absent" for t in tokenize(e.expr))}
    assert absent == set(EMPTY_WHILE_HEALTHY), "every absent() alert, and only those, belongs in EMPTY_WHILE_HEALTHY"


def test_absent_fires_for_a_job_with_no_series(live: Live) -> None:
    """What EMPTY_WHILE_HEALTHY's emptiness is worth: the same expression over a job that has no
    series returns one sample, 1, with the job's label (the alert's `job`)."""
    for name in EMPTY_WHILE_HEALTHY:
        (expression,) = [e for e in EXPRESSIONS if str(e) == name]
        missing = expression.expr.replace(f'job="{GATEWAY_JOB}"', 'job="no-such-job"')
        assert missing != expression.expr, name
        result = live.prometheus.query(missing)
        assert [(sample["metric"], sample["value"][1]) for sample in result] == [({"job": "no-such-job"}, "1")], (missing, result)


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=str)
def test_expression_returns_data(live: Live, expression: Expression) -> None:
    where = f"{expression}\n  {' '.join(expression.expr.split())}"
    probes = _probes(expression)
    try:
        live.prometheus.query(expression.expr)
        results = {name: live.prometheus.query(probe) for name, probe in probes.items()}
    except PrometheusError as error:
        pytest.fail(f"{where}\n  {error}", pytrace=False)
    if str(expression) in NOT_BUILT:
        assert not any(results.values()), f"{where}\n  has data now: remove it from NOT_BUILT\n  {results}"
    elif str(expression) in EMPTY_WHILE_HEALTHY:
        assert not any(results.values()), f"{where}\n  fires on a healthy stack: {EMPTY_WHILE_HEALTHY[str(expression)]}\n  {results}"
    elif str(expression) not in NEEDS_HISTORY:
        empty = {f"{name} {probes[name]}": result for name, result in results.items() if not _has_data(result)}
        assert not empty, f"{where}\n  no data: {empty}"
