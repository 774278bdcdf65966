"""Keeping strangers out: JWT and API-key authentication, namespace scopes enforced on every call,
sessions bound to their principal, on HTTP and on the WebSocket upgrade."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa

from app.auth.authenticator import AuthFailure, JwtVerifier
from app.config import ConfigError, load_config
from app.config.auth import JwtConfig
from tests.support import GatewayProc, free_port, start_gateway, stdio_command
from tests.support.mcp_http import RawSession
from tests.support.net import wait_until_async

SECRET = "test-secret-that-is-long-enough-for-hs256"
ISSUER = "https://issuer.test"
AUDIENCE = "mcp-gateway"
API_KEY = "mcpk_live_5e6f7a8b9c0d"


def hs256(subject: str = "alice", scope: str = "mcp:*", **claims: Any) -> str:
    payload = {"sub": subject, "scope": scope, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


class AuthSession(RawSession):
    """A raw session that presents a bearer token on every request."""

    def __init__(self, base: str, token: str | None, **kwargs: Any):
        super().__init__(base, **kwargs)
        self.token = token

    def headers(self, **extra: str) -> dict[str, str]:
        headers = super().headers(**extra)
        if self.token and "authorization" not in {k.lower() for k in extra}:
            headers["authorization"] = f"Bearer {self.token}"
        return headers


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    workdir = tmp_path_factory.mktemp("auth")
    gateway = start_gateway(
        {
            "auth": {
                "mode": ["jwt", "api_key"],
                "jwt": {"algorithms": ["HS256"], "secret_env": "TEST_JWT_SECRET", "issuer": ISSUER, "audience": AUDIENCE},
                "api_keys": [{"sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "subject": "ci-bot", "scopes": ["mcp:beta"]}],
            },
            "namespaces": {
                "alpha": {"backends": [{"name": "alpha-1", "command": stdio_command("alpha")}]},
                "beta": {"backends": [{"name": "beta-1", "command": stdio_command("beta")}]},
            },
        },
        workdir,
        env={"TEST_JWT_SECRET": SECRET},
    )
    yield gateway
    gateway.proc.stop()


def initialize(gateway: GatewayProc, token: str | None) -> httpx.Response:
    session = AuthSession(gateway.url, token)
    return session.post(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        }
    )


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing bearer token"),
        (hs256(exp=int(time.time()) - 3600), "token expired"),
        (hs256(aud="someone-else"), "token audience not accepted"),
        (hs256(iss="https://evil.test"), "token issuer not accepted"),
        (
            jwt.encode(
                {"sub": "mallory", "scope": "mcp:*", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300}, None, algorithm="none"
            ),
            "token algorithm not accepted",
        ),
        (hs256()[:-4] + "AAAA", "invalid token"),
        (
            jwt.encode(
                {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300},
                "another-secret-of-sufficient-length",
                algorithm="HS256",
            ),
            "invalid token",
        ),
        (jwt.encode({"sub": "x", "iss": ISSUER, "aud": AUDIENCE}, SECRET, algorithm="HS256"), "lacks the 'exp' claim"),
        ("mcpk_not_a_key", "unknown API key"),
    ],
    ids=["no-token", "expired", "wrong-audience", "wrong-issuer", "alg-none", "tampered", "wrong-key", "no-exp", "bad-api-key"],
)
def test_bad_credentials_are_refused_with_401(secured: GatewayProc, token: str | None, reason: str) -> None:
    response = initialize(secured, token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="mcp-gateway"')
    error = response.json()["error"]
    assert error["code"] == -32001 and reason in error["message"]
    if token:
        assert token not in secured.read_log()


def test_a_valid_jwt_and_a_valid_api_key_are_accepted(secured: GatewayProc) -> None:
    assert initialize(secured, hs256()).status_code == 200
    assert initialize(secured, API_KEY).status_code == 200
    assert API_KEY not in secured.read_log()


def test_lists_show_only_granted_namespaces_and_guessed_calls_are_refused(secured: GatewayProc) -> None:
    session = AuthSession(secured.url, hs256(scope="mcp:alpha"))
    session.initialize()
    names = {t["name"] for t in session.call("tools/list", {})["result"]["tools"]}
    assert "alpha__echo" in names and not any(n.startswith("beta__") for n in names)

    response = session.request("tools/call", {"name": "beta__echo", "arguments": {"text": "guessed"}})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == -32003 and "beta" in error["message"] and error["data"] == {"namespace": "beta"}
    assert session.call("tools/call", {"name": "alpha__echo", "arguments": {"text": "mine"}})["result"]["content"][0]["text"] == "mine"


def test_read_scope_lists_and_reads_but_cannot_call(secured: GatewayProc) -> None:
    session = AuthSession(secured.url, hs256(scope="mcp:beta:read"))
    session.initialize()
    assert any(t["name"] == "beta__echo" for t in session.call("tools/list", {})["result"]["tools"])
    assert (
        "beta"
        in session.call("prompts/get", {"name": "beta__greet", "arguments": {"name": "x"}})["result"]["messages"][0]["content"]["text"]
    )
    response = session.request("tools/call", {"name": "beta__echo", "arguments": {"text": "x"}})
    assert response.status_code == 403 and "may not call tools in namespace 'beta'" in response.json()["error"]["message"]


def test_api_key_scopes_apply(secured: GatewayProc) -> None:
    session = AuthSession(secured.url, API_KEY)
    session.initialize()
    assert session.call("tools/call", {"name": "beta__whoami", "arguments": {}})["result"]["content"][0]["text"] == "beta"
    assert session.request("tools/call", {"name": "alpha__whoami", "arguments": {}}).status_code == 403


def test_another_principals_session_is_not_found(secured: GatewayProc) -> None:
    alice = AuthSession(secured.url, hs256("alice"))
    alice.initialize()
    mallory = AuthSession(secured.url, hs256("mallory"), session_id=alice.session_id)
    assert mallory.request("tools/list").status_code == 404
    assert mallory.client.delete(mallory.url, headers=mallory.headers()).status_code == 404
    assert alice.call("ping")["result"] == {}  # Untouched by the attempt.
    assert "session presented by another principal" in secured.read_log()


def test_a_jwt_with_an_api_keys_subject_does_not_own_its_sessions(secured: GatewayProc) -> None:
    """Identity is the credential type and issuer as well as the subject: a token whose `sub`
    merely equals an API key's subject is another principal."""
    bot = AuthSession(secured.url, API_KEY)
    bot.initialize()
    impostor = AuthSession(secured.url, hs256("ci-bot"), session_id=bot.session_id)
    assert impostor.request("tools/list").status_code == 404
    assert impostor.client.delete(impostor.url, headers=impostor.headers()).status_code == 404
    assert bot.call("ping")["result"] == {}


def test_a_disallowed_origin_is_refused_even_with_a_valid_token(secured: GatewayProc) -> None:
    session = AuthSession(secured.url, hs256())
    session.initialize()
    assert session.request("ping", origin="https://evil.example").status_code == 403


async def test_websocket_upgrade_requires_credentials(secured: GatewayProc) -> None:
    url = secured.url.replace("http://", "ws://") + "/ws"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, subprotocols=["mcp"]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 401

    async with websockets.connect(url, subprotocols=["mcp"], additional_headers=bearer(hs256(scope="mcp:alpha"))) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
                }
            )
        )
        assert "result" in json.loads(await ws.recv())
        await ws.send(
            json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "beta__echo", "arguments": {"text": "x"}}})
        )
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert answer["id"] == 2 and answer["error"]["code"] == -32003


class JwksServer:
    """A local stand-in for an identity provider's JWKS endpoint (no real IdP runs here).

    `status` is what it answers; `hang` makes it hold every request until `release` is set."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.status = 200
        self.hang = False
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                if outer.hang:
                    outer.release.wait(30)
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(outer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def add_key(self, kid: str) -> rsa.RSAPrivateKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        self.keys.append({**public, "kid": kid, "use": "sig", "alg": "RS256"})
        return key


def rs256(key: rsa.RSAPrivateKey, kid: str, **claims: Any) -> str:
    payload = {"sub": "bob", "scope": "mcp:*", "aud": AUDIENCE, "exp": int(time.time()) + 300, **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def test_rs256_tokens_verify_against_a_jwks_and_new_keys_are_fetched(tmp_path: Path) -> None:
    jwks = JwksServer()
    first = jwks.add_key("k1")
    gateway = start_gateway(
        {
            "auth": {
                "mode": "jwt",
                "jwt": {"algorithms": ["RS256"], "jwks_url": jwks.url, "audience": AUDIENCE, "jwks_min_refresh_seconds": 0},
            },
            "namespaces": {"alpha": {"backends": [{"name": "alpha-1", "command": stdio_command("alpha")}]}},
        },
        tmp_path,
    )
    try:
        assert initialize(gateway, rs256(first, "k1")).status_code == 200
        rotated = jwks.add_key("k2")  # The IdP rotates keys; the gateway refreshes on the unknown kid.
        assert initialize(gateway, rs256(rotated, "k2")).status_code == 200
        forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert initialize(gateway, rs256(forged_key, "k1")).status_code == 401
        # Algorithm confusion: an HS256 token signed with the public key as secret is refused.
        public_pem = jwt.algorithms.RSAAlgorithm.to_jwk(first.public_key())
        confused = jwt.encode(
            {"sub": "x", "aud": AUDIENCE, "exp": int(time.time()) + 300},
            base64.b64encode(public_pem.encode()),
            algorithm="HS256",
            headers={"kid": "k1"},
        )
        assert initialize(gateway, confused).status_code == 401
        assert jwks.fetches == 2
    finally:
        gateway.proc.stop()
        jwks.server.shutdown()


def test_a_failing_jwks_endpoint_is_fetched_once_however_many_unknown_kids_arrive(tmp_path: Path) -> None:
    jwks = JwksServer()
    jwks.status = 500  # The identity provider is down from the start.
    gateway = start_gateway(
        {
            "auth": {"mode": "jwt", "jwt": {"algorithms": ["RS256"], "jwks_url": jwks.url, "audience": AUDIENCE}},
            "namespaces": {"alpha": {"backends": [{"name": "alpha-1", "command": stdio_command("alpha")}]}},
        },
        tmp_path,
    )
    try:
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for n in range(40):
            response = initialize(gateway, rs256(stranger, f"unknown-{n}"))
            assert response.status_code == 401 and "signing keys unavailable" in response.json()["error"]["message"]
        assert jwks.fetches == 1  # Until jwks_min_refresh_seconds have passed since that failure.
        assert "JWKS refresh failed" in gateway.read_log() and jwks.url not in gateway.read_log()
    finally:
        gateway.proc.stop()
        jwks.server.shutdown()


def jwks_verifier(jwks: JwksServer, cache_seconds: float, min_refresh_seconds: float) -> JwtVerifier:
    """A verifier with cache times shorter than configuration allows, so a test can outlive them."""
    config = JwtConfig(algorithms=["RS256"], jwks_url=jwks.url, audience=AUDIENCE)
    return JwtVerifier(config.model_copy(update={"jwks_cache_seconds": cache_seconds, "jwks_min_refresh_seconds": min_refresh_seconds}), {})


async def test_unknown_kids_refresh_a_failing_jwks_once_and_known_keys_keep_verifying() -> None:
    jwks = JwksServer()
    known = jwks.add_key("k1")
    verifier = jwks_verifier(jwks, cache_seconds=300, min_refresh_seconds=0.3)
    try:
        assert (await verifier.verify(rs256(known, "k1"))).subject == "bob"
        jwks.status = 500
        await asyncio.sleep(0.3)  # The refresh clock allows one refresh again.
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        refusals = await asyncio.gather(*(verifier.verify(rs256(stranger, f"unknown-{n}")) for n in range(40)), return_exceptions=True)
        assert all(isinstance(r, AuthFailure) and "unknown signing key" in r.message for r in refusals)
        assert jwks.fetches == 2  # One refresh for 40 unknown kids; the failure keeps the clock.
        assert (await verifier.verify(rs256(known, "k1"))).subject == "bob"
        assert jwks.fetches == 2
    finally:
        await verifier.close()
        jwks.server.shutdown()


async def test_a_hanging_jwks_endpoint_does_not_delay_tokens_signed_with_last_good_keys() -> None:
    jwks = JwksServer()
    known = jwks.add_key("k1")
    verifier = jwks_verifier(jwks, cache_seconds=0.3, min_refresh_seconds=0.3)
    try:
        assert (await verifier.verify(rs256(known, "k1"))).subject == "bob"
        jwks.hang = True
        await asyncio.sleep(0.3)  # The cache has expired; the next token triggers a refresh.
        started = time.monotonic()
        principals = await asyncio.wait_for(asyncio.gather(*(verifier.verify(rs256(known, "k1")) for _ in range(5))), 3)
        assert [p.subject for p in principals] == ["bob"] * 5
        assert time.monotonic() - started < 1.0
        await wait_until_async(lambda: jwks.fetches == 2, message="the background refresh never reached the endpoint")
        assert (await asyncio.wait_for(verifier.verify(rs256(known, "k1")), 1)).subject == "bob"
        assert jwks.fetches == 2  # One refresh in flight, however many tokens arrive meanwhile.
    finally:
        jwks.release.set()
        await verifier.close()
        jwks.server.shutdown()


def test_no_authentication_is_refused_off_loopback() -> None:
    namespaces = {"n": {"backends": [{"name": "n-1", "url": "http://h/mcp"}]}}
    with pytest.raises(ConfigError) as error:
        load_config(None, environ={}, overrides={"host": "0.0.0.0", "namespaces": namespaces})
    assert "auth.mode: 'none' is only allowed when the gateway binds a loopback address" in str(error.value)
    secured = {"mode": "api_key", "api_keys": [{"sha256": "0" * 64, "subject": "s"}]}
    assert load_config(None, environ={}, overrides={"host": "0.0.0.0", "auth": secured, "namespaces": namespaces}).host == "0.0.0.0"


def test_unsafe_jwt_configurations_are_rejected() -> None:
    namespaces = {"n": {"backends": [{"name": "n-1", "url": "http://h/mcp"}]}}
    for jwt_config, problem in (
        ({"algorithms": ["none"], "secret_env": "X"}, "unsupported or unsafe algorithm"),
        ({"algorithms": ["HS256", "RS256"], "secret_env": "X", "jwks_url": "http://k"}, "do not mix HMAC"),
        ({"algorithms": ["RS256"]}, "need 'public_key_file' or 'jwks_url'"),
    ):
        with pytest.raises(ConfigError) as error:
            load_config(None, environ={}, overrides={"auth": {"mode": "jwt", "jwt": jwt_config}, "namespaces": namespaces})
        assert problem in str(error.value)


def test_a_missing_jwt_secret_stops_start_up_with_the_key_named(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    config = tmp_path / "g.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "auth": {"mode": "jwt", "jwt": {"algorithms": ["HS256"], "secret_env": "UNSET_SECRET_FOR_TEST"}},
                "namespaces": {"n": {"backends": [{"name": "n-1", "url": "http://127.0.0.1:9/mcp"}]}},
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--config", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "auth.jwt.secret_env: environment variable UNSET_SECRET_FOR_TEST is not set" in result.stderr


def test_every_attempt_is_counted_by_type_and_result(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    metrics_port = free_port()
    gateway = start_gateway(
        {
            "auth": {
                "mode": ["jwt", "api_key"],
                "jwt": {"algorithms": ["HS256"], "secret_env": "TEST_JWT_SECRET", "issuer": ISSUER, "audience": AUDIENCE},
                "api_keys": [{"sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "subject": "ci-bot"}],
            },
            "namespaces": {"alpha": {"backends": [{"name": "alpha-1", "command": stdio_command("alpha")}]}},
        },
        tmp_path,
        env={"TEST_JWT_SECRET": SECRET, "MCP_GATEWAY_METRICS_PORT": str(metrics_port)},
    )
    try:
        for token, status in ((hs256(), 200), (hs256(exp=1), 401), (API_KEY, 200), ("mcpk_wrong", 401), (None, 401)):
            assert initialize(gateway, token).status_code == status
        # Refusals after authentication count too: a guessed forbidden tool, a stolen session id,
        # a disallowed Origin.
        alice = AuthSession(gateway.url, hs256("alice", scope="mcp:none"))
        alice.initialize()  # That initialize is one more jwt success.
        assert alice.request("tools/call", {"name": "alpha__echo", "arguments": {"text": "x"}}).status_code == 403
        assert AuthSession(gateway.url, hs256("mallory"), session_id=alice.session_id).request("ping").status_code == 404
        assert alice.request("ping", origin="https://evil.example").status_code == 403
        scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        counts = {
            (s.labels["type"], s.labels["result"]): s.value
            for family in text_string_to_metric_families(scrape)
            if family.name == "mcp_gateway_auth_attempts"
            for s in family.samples
            if s.name == "mcp_gateway_auth_attempts_total"
        }
        assert counts == {
            ("jwt", "success"): 5,  # initialize; alice's initialize, initialized and tools/call; mallory's ping
            ("jwt", "failure"): 1,
            ("api_key", "success"): 1,
            ("api_key", "failure"): 2,
            ("scope", "failure"): 1,
            ("session", "failure"): 1,
            ("origin", "failure"): 1,
        }
    finally:
        gateway.proc.stop()
