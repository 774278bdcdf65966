"""Connection-scoped backends (WebSocket, stdio): one upstream session per gateway replica, shared
by every gateway session, with request ids and progress tokens rewritten so answers find their way
back.

Messages the backend sends on its own are routed like this: progress notifications by their
(rewritten) token, exactly; server-to-client requests and log messages to the one gateway session
with calls in flight on the connection, and refused (requests) or dropped (logs) when several
sessions are in flight, because guessing would leak one user's data to another; `list_changed` and
`resources/updated` notifications to every session of this replica that may read the namespace
(the gateway's `deliver` filters by scope).

What is not a JSON-RPC message (invalid JSON, an array, a malformed object) is the backend's
fault, and only the call it names suffers: a call whose id it carries fails at once (a backend
failure, counted by its breaker); a line naming no call is logged and dropped. The connection and
every other call go on.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from app import __version__
from app.backends.base import (
    MAX_REASON_CHARS,
    Backend,
    BackendFailure,
    Handshake,
    Opened,
)
from app.core import jsonrpc
from app.core.background import BackgroundTasks
from app.core.events import Event
from app.core.jsonrpc import Message, RequestId
from app.core.protocol import LATEST_VERSION

log = logging.getLogger("mcp_gateway.backends")

#: Notifications queued for one call beyond this are dropped (a slow client loses progress
#: updates, never its response).
MAX_QUEUED_NOTIFICATIONS = 256
#: The least time a connection's `initialize` gets, whatever the call timeout: a stdio server's
#: cold start (interpreter, imports) easily takes longer than a short `timeout_seconds`.
HANDSHAKE_TIMEOUT_SECONDS = 10.0

BROADCAST_METHODS = frozenset(
    {
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/resources/list_changed",
        "notifications/resources/updated",
    }
)

#: The shared session declares every client capability the gateway can relay; a session whose
#: client lacks one gets the server-to-client request refused by the gateway.
GATEWAY_HANDSHAKE = Handshake(
    protocol_version=LATEST_VERSION,
    capabilities={"sampling": {}, "elicitation": {}, "roots": {"listChanged": True}},
    client_info={"name": "mcp-gateway", "version": __version__},
)

Deliver = Callable[[str | None, Message], None]


@dataclass
class _Call:
    owner: str
    client_id: RequestId | None
    queue: asyncio.Queue[Event | BaseException] = field(default_factory=asyncio.Queue)


def _progress_token(message: Message) -> Any:
    meta = (message.get("params") or {}).get("_meta") or {}
    return meta.get("progressToken")


def _with_progress_token(message: Message, token: Any) -> Message:
    params = dict(message.get("params") or {})
    params["_meta"] = {**(params.get("_meta") or {}), "progressToken": token}
    return {**message, "params": params}


class MultiplexedBackend(Backend, abc.ABC):
    """The shared machinery; subclasses provide a byte-message connection."""

    shared_session = True

    def __init__(self, namespace: str, config: Any):
        super().__init__(namespace, config)
        self._calls: dict[int, _Call] = {}
        self._upstream_ids: dict[tuple[str, RequestId | None], int] = {}
        self._progress: dict[str, tuple[_Call, Any]] = {}
        self._ids = itertools.count(1)
        self._opened: Opened | None = None
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._background = BackgroundTasks()
        #: Set by the gateway: deliver an unsolicited message to one session (or None: all).
        self.deliver: Deliver = lambda owner, message: None

    # -- the connection, provided by subclasses ---------------------------------------------
    @abc.abstractmethod
    async def _connect(self) -> None: ...

    @abc.abstractmethod
    async def _write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def _read(self) -> bytes | str | None:
        """The next message, or None when the connection has ended."""

    @abc.abstractmethod
    async def _disconnect(self) -> None: ...

    # -- session ----------------------------------------------------------------------------
    async def _ensure_open(self) -> Opened:
        if self._opened is not None:
            return self._opened
        async with self._lock:
            if self._opened is None:
                self._opened = await self._handshake()
        return self._opened

    async def _handshake(self) -> Opened:
        try:
            await self._connect()
        except (TimeoutError, OSError, ValueError) as exc:
            raise self.failure(f"cannot connect ({type(exc).__name__}: {exc})", connect=True) from None
        self._reader = asyncio.create_task(self._read_loop(), name=f"read-{self.name}")
        request = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": GATEWAY_HANDSHAKE.initialize_params()}
        result: dict[str, Any] = {}
        try:
            calls = self._call(request, owner="", timeout=max(self.config.timeout_seconds, HANDSHAKE_TIMEOUT_SECONDS))
            async with aclosing(calls):
                async for event in calls:
                    if event.message and "error" in event.message:
                        await self._disconnect()
                        raise self.failure(f"initialize refused: {event.message['error'].get('message')}", trips=False)
                    result = (event.message or {}).get("result") or {}
            await self._write(jsonrpc.dumps(jsonrpc.notification("notifications/initialized")))
        except BaseException:
            # A failed or abandoned handshake must not leave its reader and process behind: the
            # next attempt starts a new connection, and two readers on one pipe break both.
            reader, self._reader = self._reader, None
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await self._disconnect()
            raise
        self.server_result = result
        return Opened(None, str(result.get("protocolVersion") or LATEST_VERSION), result)

    async def open_session(self, handshake: Handshake, headers: dict[str, str]) -> Opened:
        return await self._ensure_open()

    # -- calls ------------------------------------------------------------------------------
    async def request(
        self, session_id: str | None, protocol_version: str | None, message: Message, headers: dict[str, str], owner: str
    ) -> AsyncGenerator[Event, None]:
        await self._ensure_open()
        async with aclosing(self._call(message, owner)) as events:
            async for event in events:
                yield event

    async def _call(self, message: Message, owner: str, timeout: float | None = None) -> AsyncGenerator[Event, None]:
        timeout = timeout or self.config.timeout_seconds
        upstream_id = next(self._ids)
        call = _Call(owner, message.get("id"))
        outgoing = {**message, "id": upstream_id}
        token = _progress_token(message)
        upstream_token = f"{self.name}-{upstream_id}"
        if token is not None:
            outgoing = _with_progress_token(outgoing, upstream_token)
            self._progress[upstream_token] = (call, token)
        self._calls[upstream_id] = call
        self._upstream_ids[(owner, call.client_id)] = upstream_id
        answered = False
        try:
            await self._send_or_fail(outgoing)
            while True:
                try:
                    item = await asyncio.wait_for(call.queue.get(), timeout)
                except TimeoutError:
                    self._cancel_upstream(upstream_id, "gateway timeout")
                    raise self.failure(f"no answer within {timeout:g}s", timeout=True) from None
                if isinstance(item, BaseException):
                    raise item
                answered = item.message is not None and jsonrpc.is_response(item.message) and item.message.get("id") == call.client_id
                yield item
                if answered:
                    return
        except (GeneratorExit, asyncio.CancelledError):
            # Abandoned by its consumer (the client went away): the answer could reach nobody, and
            # the connection is shared, so the server is told rather than left working for nothing.
            if not answered:
                self._cancel_upstream(upstream_id, "client went away")
            raise
        finally:
            self._calls.pop(upstream_id, None)
            self._upstream_ids.pop((owner, call.client_id), None)
            self._progress.pop(upstream_token, None)

    async def send(
        self,
        session_id: str | None,
        protocol_version: str | None,
        message: Message,
        headers: dict[str, str],
        owner: str = "",
    ) -> None:
        await self._ensure_open()
        if message.get("method") == "notifications/cancelled":
            params = message.get("params") or {}
            upstream_id = self._upstream_ids.get((owner, params.get("requestId")))
            if upstream_id is None:
                return  # Not in flight here: nothing to cancel.
            message = {**message, "params": {**params, "requestId": upstream_id}}
        await self._send_or_fail(message)

    def _cancel_upstream(self, upstream_id: int, reason: str) -> None:
        cancel = jsonrpc.notification("notifications/cancelled", {"requestId": upstream_id, "reason": reason})
        self._background.spawn(self._send_best_effort(cancel, "cancel an abandoned call"))

    async def _send_or_fail(self, message: Message) -> None:
        try:
            await self._write(jsonrpc.dumps(message))
        except (OSError, ConnectionError, RuntimeError) as exc:
            raise self.failure(f"connection broke ({type(exc).__name__})") from None

    async def _send_best_effort(self, message: Message, what: str) -> None:
        """Write to a connection that may already be gone; a failure is logged, never raised."""
        try:
            await self._write(jsonrpc.dumps(message))
        except Exception:
            log.warning("could not %s", what, extra={"namespace": self.namespace, "backend": self.name})

    # -- reading ----------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        reason = "connection closed by the backend"
        try:
            while (raw := await self._read()) is not None:
                self._receive(raw)
        except Exception as exc:
            reason = f"connection lost ({type(exc).__name__})"
        finally:
            self._opened = None
            failure = self.failure(reason)
            for call in list(self._calls.values()):
                call.queue.put_nowait(failure)
            self._background.spawn(self._disconnect())

    def _receive(self, raw: bytes | str) -> None:
        """Route one message from the backend; garbage fails the call it names, if any."""
        try:
            message = self.decode(raw)
        except BackendFailure as failure:
            log.warning(
                "backend sent an invalid message: %s",
                failure.message[:MAX_REASON_CHARS],
                extra={"namespace": self.namespace, "backend": self.name},
            )
            self._fail_named(raw, failure)
            return
        try:
            self._dispatch(message)
        except Exception as exc:
            log.warning("backend message not routed (%s)", type(exc).__name__, extra={"namespace": self.namespace, "backend": self.name})

    def _fail_named(self, raw: bytes | str, failure: BackendFailure) -> None:
        """Fail the calls an invalid message answers (an object or an array of objects carrying
        their ids); nothing when it names none."""
        try:
            decoded = jsonrpc.loads(raw)
        except jsonrpc.GatewayError:
            return
        for item in decoded if isinstance(decoded, list) else [decoded]:
            upstream_id = item.get("id") if isinstance(item, dict) and "method" not in item else None
            call = self._calls.get(upstream_id) if isinstance(upstream_id, int) and not isinstance(upstream_id, bool) else None
            if call is not None:
                call.queue.put_nowait(failure)

    def _sole_owner_call(self) -> _Call | None:
        owners = {call.owner for call in self._calls.values() if call.owner}
        if len(owners) != 1:
            return None
        return [call for call in self._calls.values() if call.owner][-1]

    def _dispatch(self, message: Message) -> None:
        method = message.get("method")
        if method is None:
            call = self._calls.get(message.get("id"))  # type: ignore[arg-type]
            if call is not None:
                call.queue.put_nowait(Event({**message, "id": call.client_id}, source=self.name))
            return
        if "id" in message:
            self._dispatch_server_request(message)
            return
        if method in BROADCAST_METHODS:
            self.deliver(None, message)
            return
        if method == "notifications/progress":
            params = message.get("params") or {}
            entry = self._progress.get(str(params.get("progressToken")))
            if entry is not None:
                call, token = entry
                self._enqueue(call, {**message, "params": {**params, "progressToken": token}})
            return
        call = self._sole_owner_call()
        if call is not None:
            self._enqueue(call, message)

    def _enqueue(self, call: _Call, message: Message) -> None:
        if call.queue.qsize() < MAX_QUEUED_NOTIFICATIONS:
            call.queue.put_nowait(Event(message, source=self.name))

    def _dispatch_server_request(self, message: Message) -> None:
        call = self._sole_owner_call()
        if call is not None:
            call.queue.put_nowait(Event(message, source=self.name))
            return
        error = jsonrpc.GatewayError(
            jsonrpc.ErrorCode.INTERNAL_ERROR,
            "mcp-gateway cannot relay this request: it is not tied to exactly one client session "
            "on this shared connection (use a Streamable HTTP backend for per-session server requests)",
        )
        self._background.spawn(self._send_best_effort(jsonrpc.error_response(message["id"], error), "answer the backend"))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self._disconnect()
