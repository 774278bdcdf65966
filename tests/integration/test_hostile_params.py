"""Messages a well-behaved client never sends: params fields of the wrong type and request ids
reused while the first request is in flight. Each gets a JSON-RPC error carrying the request's id
(-32602 naming the field, -32600 for the duplicate id), and the connection, the session and every
other request go on, over Streamable HTTP and WebSocket, in front of Streamable HTTP, WebSocket
and stdio backends."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import GatewayProc
from tests.support.mcp_http import RawSession, messages
from tests.support.mcp_ws import WsSession
from tests.support.stacks import every_transport

#: Namespaces by backend transport: Streamable HTTP, WebSocket, stdio.
NAMESPACES = ("web", "sock", "local")

#: Every method the gateway routes, with params it accepts, and the fields it reads: (path, what
#: the field must be). Paths are dotted; each test breaks one field and keeps the others valid.
ROUTED: dict[str, tuple[dict[str, Any], tuple[tuple[str, str], ...]]] = {
    "tools/call": ({"name": "local__echo", "arguments": {"text": "x"}}, (("name", "string"), ("arguments", "object"))),
    "prompts/get": ({"name": "local__greet", "arguments": {"name": "Ada"}}, (("name", "string"), ("arguments", "object"))),
    "resources/read": ({"uri": "info://local"}, (("uri", "string"),)),
    "resources/subscribe": ({"uri": "info://local"}, (("uri", "string"),)),
    "resources/unsubscribe": ({"uri": "info://local"}, (("uri", "string"),)),
    "completion/complete": (
        {"ref": {"type": "ref/prompt", "name": "local__greet"}, "argument": {"name": "name", "value": "A"}},
        (("ref", "object"), ("ref.type", "string"), ("ref.name", "string"), ("argument", "object"), ("argument.value", "string")),
    ),
    "tools/list": ({}, (("cursor", "string"),)),
    "prompts/list": ({}, (("cursor", "string"),)),
    "resources/list": ({}, (("cursor", "string"),)),
    "resources/templates/list": ({}, (("cursor", "string"),)),
    "logging/setLevel": ({"level": "info"}, (("level", "string"),)),
    "ping": ({}, ()),
}
#: Fields every request may carry.
META = (("_meta", "object"), ("_meta.progressToken", "id"))

JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.lists(st.integers(-1000, 1000), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(-1000, 1000), max_size=3),
)
FITS = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "id": lambda v: isinstance(v, (str, int)) and not isinstance(v, bool),
}
REQUEST_IDS = st.one_of(st.integers(1, 2**40), st.text(min_size=1, max_size=12))


def broken(params: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`params` (deep-copied) with the field at `path` set to `value`, parents created."""
    result = orjson.loads(orjson.dumps(params))
    *parents, last = path.split(".")
    holder = result
    for part in parents:
        holder = holder.setdefault(part, {})
    holder[last] = value
    return result


@st.composite
def malformed_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A request to a routed method with exactly one field of the wrong type."""
    method = draw(st.sampled_from(sorted(ROUTED)))
    params, fields = ROUTED[method]
    path, kind = draw(st.sampled_from(fields + META))
    value = draw(JSON_VALUES.filter(lambda v: not FITS[kind](v)))
    return {"jsonrpc": "2.0", "id": draw(REQUEST_IDS), "method": method, "params": broken(params, path, value)}


@pytest.fixture(scope="module", params=["memory", "redis"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    """One gateway for the module, keeping its sessions in memory, then in Redis."""
    workdir = tmp_path_factory.mktemp("hostile")
    store = {"redis_url": request.getfixturevalue("redis_server").url} if request.param == "redis" else {}
    with every_transport(workdir, {**store, "health_checks": {"enabled": False}}) as started:
        yield started.gateway


@pytest.fixture(scope="module")
def http(stack: GatewayProc) -> Iterator[RawSession]:
    session = RawSession(stack.url)
    session.initialize(capabilities={"sampling": {}})
    yield session
    session.close()


@pytest.fixture(scope="module")
def ws(stack: GatewayProc) -> Iterator[WsSession]:
    with WsSession(ws_url(stack)) as session:
        assert "result" in session.initialize()
        yield session


def ws_url(gateway: GatewayProc) -> str:
    return gateway.url.replace("http://", "ws://") + "/ws"


def answer_over_http(session: RawSession, message: dict[str, Any]) -> dict[str, Any]:
    response = session.post(message)
    assert response.status_code in (200, 400), response.text  # Never a 500 and a traceback.
    return messages(response)[-1]


def answer_over_ws(session: WsSession, message: dict[str, Any]) -> dict[str, Any]:
    session.conn.send(orjson.dumps(message).decode())
    while True:
        answer = orjson.loads(session.conn.recv(timeout=15))
        if "method" not in answer and answer.get("id") == message.get("id"):
            return answer


def assert_refused(answer: dict[str, Any], message: dict[str, Any]) -> None:
    assert answer.get("id") == message.get("id"), (message, answer)
    assert answer.get("error", {}).get("code") == -32602, (message, answer)


def assert_still_serving(call: Any) -> None:
    answer = call("tools/call", {"name": "local__echo", "arguments": {"text": "still here"}})
    assert answer["result"]["content"][0]["text"] == "still here", answer


# -- wrongly typed params ----------------------------------------------------------------------------

#: The cases reported against the gateway, each once per backend transport where it matters.
REPORTED = [
    pytest.param(
        {"method": "completion/complete", "params": {"ref": "local__greet", "argument": {"name": "n", "value": ""}}}, "ref", id="ref-string"
    ),
    *(
        pytest.param(
            {"method": "tools/call", "params": {"name": f"{ns}__echo", "arguments": {"text": "x"}, "_meta": "x"}},
            "_meta",
            id=f"meta-string-{ns}",
        )
        for ns in NAMESPACES
    ),
    pytest.param({"method": "tools/call", "params": {"name": "local__echo", "arguments": "x"}}, "arguments", id="arguments-string"),
    pytest.param({"method": "resources/read", "params": {"uri": ["info://local"]}}, "uri", id="uri-list"),
    pytest.param({"method": "tools/list", "params": {"cursor": {"c": 1}}}, "cursor", id="cursor-object"),
    pytest.param(
        {"method": "tools/call", "params": {"name": "local__echo", "_meta": {"progressToken": 1.5}}},
        "_meta.progressToken",
        id="token-float",
    ),
]


@pytest.mark.parametrize(("message", "field"), REPORTED)
@pytest.mark.parametrize("transport", ["http", "ws"])
def test_a_wrongly_typed_field_is_invalid_params_naming_it(
    http: RawSession, ws: WsSession, transport: str, message: dict[str, Any], field: str
) -> None:
    request = {"jsonrpc": "2.0", "id": f"bad-{field}", **message}
    answer = answer_over_http(http, request) if transport == "http" else answer_over_ws(ws, request)
    assert_refused(answer, request)
    assert f"'{field}'" in answer["error"]["message"] and answer["error"]["data"] == {"field": field}, answer
    assert_still_serving(http.call if transport == "http" else ws.call)


@pytest.mark.parametrize("request_id", [{"id": 1}, [1], 1.5, True, None])
def test_a_cancellation_with_a_malformed_request_id_is_refused_and_nothing_breaks(http: RawSession, ws: WsSession, request_id: Any) -> None:
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
    response = http.post(cancel)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == -32602 and "requestId" in response.json()["error"]["message"]
    ws.conn.send(orjson.dumps(cancel).decode())
    answer = orjson.loads(ws.conn.recv(timeout=15))
    assert answer["id"] is None and answer["error"]["code"] == -32602, answer
    assert_still_serving(http.call)
    assert_still_serving(ws.call)


PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(message=malformed_requests())
def test_any_routed_method_with_a_wrongly_typed_field_is_answered_over_http(http: RawSession, message: dict[str, Any]) -> None:
    assert_refused(answer_over_http(http, message), message)
    assert http.call("ping")["result"] == {}


@PROPERTY
@given(message=malformed_requests())
def test_any_routed_method_with_a_wrongly_typed_field_is_answered_over_websocket(ws: WsSession, message: dict[str, Any]) -> None:
    assert_refused(answer_over_ws(ws, message), message)
    assert ws.call("ping")["result"] == {}


def test_the_connections_carry_on_after_the_property_tests(http: RawSession, ws: WsSession) -> None:
    assert_still_serving(http.call)
    assert_still_serving(ws.call)


# -- duplicate request ids -----------------------------------------------------------------------------

_ids = itertools.count(1000)


def sample_call(ns: str, request_id: int) -> dict[str, Any]:
    """A call that stays in flight until the client answers the backend's sampling request."""
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": f"{ns}__sample", "arguments": {"prompt": "hi"}}}


def sampled(server_request: dict[str, Any]) -> dict[str, Any]:
    assert server_request["method"] == "sampling/createMessage", server_request
    result = {"role": "assistant", "content": {"type": "text", "text": "sampled"}, "model": "test-model"}
    return {"jsonrpc": "2.0", "id": server_request["id"], "result": result}


def sse_messages(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON-RPC messages of an SSE stream, as they arrive."""
    for line in lines:
        if line.startswith("data:") and line[5:].strip():
            yield orjson.loads(line[5:])


def assert_duplicate_refused(answer: dict[str, Any], request_id: int) -> None:
    assert answer["id"] == request_id and answer["error"]["code"] == -32600, answer
    assert "already in flight" in answer["error"]["message"], answer


@pytest.mark.parametrize("ns", NAMESPACES)
def test_a_duplicate_id_in_flight_is_refused_over_http_and_the_first_is_answered(http: RawSession, ns: str) -> None:
    request_id = next(_ids)
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", http.url, content=orjson.dumps(sample_call(ns, request_id)), headers=http.headers()) as first,
    ):
        assert first.status_code == 200
        stream = sse_messages(first.iter_lines())
        server_request = next(stream)
        duplicate = http.post(
            {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": f"{ns}__echo", "arguments": {"text": "dup"}}}
        )
        assert duplicate.status_code == 400, duplicate.text
        assert_duplicate_refused(duplicate.json(), request_id)
        assert http.post(sampled(server_request)).status_code == 202
        final = [m for m in stream if "method" not in m][-1]
    assert final["id"] == request_id and final["result"]["content"][0]["text"] == "sampled", final
    # The id is free again once its request was answered.
    assert http.call("ping")["result"] == {}
    assert "result" in answer_over_http(http, {"jsonrpc": "2.0", "id": request_id, "method": "ping"})


@pytest.mark.parametrize("ns", NAMESPACES)
def test_a_duplicate_id_in_flight_is_refused_over_websocket_and_the_first_is_answered(stack: GatewayProc, ns: str) -> None:
    with WsSession(ws_url(stack)) as session:
        session.call(
            "initialize", {"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}}, "clientInfo": {"name": "t", "version": "1"}}
        )
        request_id = next(_ids)
        session.conn.send(orjson.dumps(sample_call(ns, request_id)).decode())
        server_request = orjson.loads(session.conn.recv(timeout=15))
        duplicate = {"jsonrpc": "2.0", "id": request_id, "method": "ping"}
        session.conn.send(orjson.dumps(duplicate).decode())
        assert_duplicate_refused(orjson.loads(session.conn.recv(timeout=15)), request_id)
        session.conn.send(orjson.dumps(sampled(server_request)).decode())
        final = orjson.loads(session.conn.recv(timeout=15))
        assert final["id"] == request_id and final["result"]["content"][0]["text"] == "sampled", final
        assert session.call("ping")["result"] == {}
