"""MCP Streamable HTTP on `/mcp`: POST one message, GET the standalone stream, DELETE the session.

Requests are answered with JSON when the backend answers at once, and with SSE streamed as it comes
when anything precedes the response (progress, logs, server requests) or the backend streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app import telemetry
from app.core import jsonrpc
from app.core.events import Event
from app.core.jsonrpc import ErrorCode, GatewayError, Message
from app.core.protocol import SESSION_HEADER, SUPPORTED_VERSIONS, VERSION_HEADER
from app.edge import sse
from app.edge.services import Edge, EdgeServices
from app.pipeline.context import RequestContext
from app.state import SessionRecord

log = logging.getLogger("mcp_gateway.http")

JSON_TYPE = "application/json"
#: Seconds between keep-alive comments on an idle standalone stream (proxies close silent ones).
KEEPALIVE_SECONDS = 15.0


def json_response(message: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(jsonrpc.dumps(message), status_code=status, media_type=JSON_TYPE, headers=headers)


def error_http(error: GatewayError, request_id: jsonrpc.RequestId | None = None) -> Response:
    return json_response(jsonrpc.error_response(request_id, error), error.http_status, error.headers)


def _refusal(error: GatewayError, message: Message | None) -> Response:
    """A POSTed message refused (logged), answered with the request's id when it had one."""
    log.warning("request refused: %s", error.message, extra={"status": error.http_status})
    request_id = message.get("id") if isinstance(message, dict) and "method" in message else None
    return error_http(error, request_id)


def _accepts(header: str, wanted: str) -> bool:
    kinds = {part.split(";")[0].strip().lower() for part in header.split(",")}
    major = wanted.split("/")[0]
    return bool(kinds & {wanted, f"{major}/*", "*/*"})


def _bad_request(message: str, code: ErrorCode = ErrorCode.INVALID_REQUEST, status: int = 400) -> GatewayError:
    return GatewayError(code, message, http_status=status)


class _HeldStream(StreamingResponse):
    """A standalone stream that gives its slot back when it ends, however it ends (even if the
    client is gone before the first byte)."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None]):
        super().__init__(content, media_type="text/event-stream", headers=sse.SSE_HEADERS)
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


class StreamableHttp(Edge):
    """The `/mcp` endpoint: the edge's checks (origin, headers, body, authentication), then the
    pipeline."""

    def __init__(self, services: EdgeServices, *, max_streams_per_principal: int):
        super().__init__(services)
        self.max_streams = max_streams_per_principal
        #: Standalone streams open on this replica, per principal: one caller holding hundreds
        #: would otherwise take every upstream stream connection from everyone else.
        self._streams: Counter[tuple[str, str]] = Counter()

    def _hold_stream(self, ctx: RequestContext) -> Callable[[], None]:
        """Take one of the principal's stream slots, or refuse with 429; returns the release."""
        key = (ctx.principal.kind, ctx.principal.subject)
        if self._streams[key] >= self.max_streams:
            log.warning("standalone stream refused: too many open", extra={"status": 429, "limit": self.max_streams})
            raise GatewayError(
                ErrorCode.RATE_LIMITED,
                f"Too many standalone streams: at most {self.max_streams} per caller at once; close one first",
                http_status=429,
            )
        self._streams[key] += 1

        def release() -> None:
            self._streams[key] -= 1
            if self._streams[key] <= 0:
                del self._streams[key]

        return release

    async def _context(self, request: Request) -> RequestContext:
        """Who is asking (authenticated here, on every request: HTTP has no connection state)."""
        traceparent = request.headers.get("traceparent")
        peer = request.client.host if request.client else None
        client_address, protocol = self.clients.resolve(peer, request.headers, "http")
        return RequestContext(
            protocol=protocol,
            principal=await self.auth.authenticate(request.headers),
            client_address=client_address,
            headers={"traceparent": traceparent} if traceparent else {},
        )

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _bad_request(f"Request body exceeds {self.max_body} bytes", status=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                raise _bad_request(f"Request body exceeds {self.max_body} bytes", status=413)
        return bytes(body)

    def _check_version(self, request: Request) -> None:
        version = request.headers.get(VERSION_HEADER)
        if version is not None and version not in SUPPORTED_VERSIONS:
            raise _bad_request(f"Unsupported MCP-Protocol-Version '{version}'; supported: {', '.join(SUPPORTED_VERSIONS)}")

    async def _session(self, ctx: RequestContext, request: Request) -> SessionRecord:
        session_id = request.headers.get(SESSION_HEADER)
        if not session_id:
            raise _bad_request("Bad Request: Mcp-Session-Id header is required (send initialize first)")
        return await self.pipeline.session(ctx, session_id)

    async def post(self, request: Request) -> Response:
        with self.drain.request():
            return await self._post(request)

    async def _post(self, request: Request) -> Response:
        message: Message | None = None
        ctx: RequestContext | None = None
        started = time.perf_counter()
        try:
            self.policy.check(request.headers)
            accept = request.headers.get("accept", "")
            if not (_accepts(accept, JSON_TYPE) and _accepts(accept, "text/event-stream")):
                raise _bad_request("Not Acceptable: Accept must include application/json and text/event-stream", status=406)
            if not request.headers.get("content-type", "").lower().startswith(JSON_TYPE):
                raise _bad_request("Unsupported Media Type: Content-Type must be application/json", status=415)
            self._check_version(request)
            ctx = await self._context(request)
            message = jsonrpc.validate(jsonrpc.loads(await self._read_body(request)))
            if message.get("method") == "initialize":
                if not jsonrpc.is_request(message):
                    raise _bad_request("Invalid Request: initialize must be a request with an id")
                return await self._initialize(ctx, message)
            record = await self._session(ctx, request)
            if jsonrpc.is_notification(message):
                await self.pipeline.handle_notification(ctx, record, message)
                return Response(status_code=202)
            if jsonrpc.is_response(message):
                await self.pipeline.handle_response(ctx, record, message)
                return Response(status_code=202)
            return await self._answer(ctx, record, message)
        except GatewayError as error:
            response = _refusal(error, message)
            telemetry.request_refused("http", message, error, started, ctx)  # Refused here: counted here.
            return response

    # The pipeline's request steps count their requests, refusals included: the edge only answers.
    async def _initialize(self, ctx: RequestContext, message: Message) -> Response:
        try:
            record, response = await self.pipeline.initialize(ctx, message)
        except GatewayError as error:
            return _refusal(error, message)
        return json_response(response, headers={SESSION_HEADER: record.id})

    async def _answer(self, ctx: RequestContext, record: SessionRecord, message: Message) -> Response:
        events = self.pipeline.handle_request(ctx, record, message)
        try:
            first = await anext(events)
        except GatewayError as error:
            return _refusal(error, message)
        if (
            first.event_id is None
            and first.message is not None
            and first.message.get("id") == message["id"]
            and jsonrpc.is_response(first.message)
        ):
            await events.aclose()
            return json_response(first.message)

        async def stream() -> AsyncIterator[bytes]:
            with self.drain.request():
                async with aclosing(events):
                    yield sse.encode(first)
                    async for event in events:
                        yield sse.encode(event)

        return StreamingResponse(stream(), media_type="text/event-stream", headers=sse.SSE_HEADERS)

    async def get(self, request: Request) -> Response:
        try:
            self.policy.check(request.headers)
            if not _accepts(request.headers.get("accept", ""), "text/event-stream"):
                raise _bad_request("Not Acceptable: Accept must include text/event-stream", status=406)
            self._check_version(request)
            ctx = await self._context(request)
            record = await self._session(ctx, request)
            release = self._hold_stream(ctx)
            try:
                events = await self.pipeline.listen(ctx, record, request.headers.get("last-event-id"))
            except BaseException:
                release()
                raise
        except GatewayError as error:
            return error_http(error)
        return _HeldStream(_with_keepalive(events, self.drain.stopping), release)

    async def delete(self, request: Request) -> Response:
        with self.drain.request():
            return await self._delete(request)

    async def _delete(self, request: Request) -> Response:
        try:
            self.policy.check(request.headers)
            record = await self._session(await self._context(request), request)
            await self.pipeline.end_session(record)
        except GatewayError as error:
            return error_http(error)
        return Response(status_code=204)


async def _with_keepalive(events: AsyncGenerator[Event, None], stopping: asyncio.Event) -> AsyncIterator[bytes]:
    """SSE bytes of `events`, with a comment whenever the stream has been idle a while; ends when
    the gateway drains (the client reconnects, to another replica)."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue(1)

    async def pump() -> None:
        try:
            async for event in events:
                await queue.put(event)
        finally:
            queue.put_nowait(None) if queue.empty() else None

    task = asyncio.create_task(pump())
    stop = asyncio.create_task(stopping.wait())
    try:
        yield sse.KEEPALIVE  # Flush headers now: the client knows the stream is open.
        while True:
            get = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({get, stop}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                if stop in done:
                    return
                yield sse.KEEPALIVE
                continue
            event = get.result()
            if event is None:
                return
            yield sse.encode(event)
    finally:
        task.cancel()
        stop.cancel()
