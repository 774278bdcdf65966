"""The JSON-RPC 2.0 envelope: parsing, classification and error objects.

The gateway reads only the envelope (`jsonrpc`, `id`, `method`, `params`, `result`, `error`)
and passes everything else through untouched, so new protocol fields survive the hop.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import orjson

Message = dict[str, Any]
RequestId = str | int


class ErrorCode(IntEnum):
    """Standard JSON-RPC codes, then the gateway's own stable codes (-32000..-32099 range)."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    UNAUTHORIZED = -32001
    FORBIDDEN = -32003
    SESSION_NOT_FOUND = -32004
    RATE_LIMITED = -32029
    BACKEND_UNAVAILABLE = -32050
    BACKEND_TIMEOUT = -32051
    CONFIGURATION_ERROR = -32053
    STATE_UNAVAILABLE = -32054
    SHUTTING_DOWN = -32060


class GatewayError(Exception):
    """A failure that becomes a JSON-RPC error object (and, on HTTP, a status code)."""

    def __init__(
        self,
        code: ErrorCode | int,
        message: str,
        data: Any = None,
        http_status: int = 200,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.http_status = http_status
        self.headers = headers or {}

    @property
    def kind(self) -> str:
        """A short name for logs and metrics (`error.type`)."""
        return self.code.name.lower() if isinstance(self.code, ErrorCode) else "upstream_error"

    @classmethod
    def from_error(cls, error: Any) -> GatewayError:
        """Wrap a JSON-RPC error object a backend sent, keeping its code, message and data."""
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        code = ErrorCode(code) if code in ErrorCode._value2member_map_ else code
        return cls(
            code if isinstance(code, int) else ErrorCode.INTERNAL_ERROR, str(error.get("message", "backend error")), error.get("data")
        )

    def to_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": int(self.code), "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def error_response(request_id: RequestId | None, error: GatewayError) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_error()}


def result_response(request_id: RequestId, result: Any) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def notification(method: str, params: dict[str, Any] | None = None) -> Message:
    message: Message = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def dumps(message: Any) -> bytes:
    return orjson.dumps(message)


def loads(body: bytes | str) -> Any:
    """Decode JSON, raising the JSON-RPC parse error on failure."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(ErrorCode.PARSE_ERROR, f"Parse error: {exc}", http_status=400) from None


def _valid_id(value: Any) -> bool:
    return (isinstance(value, (str, int))) and not isinstance(value, bool)


def validate(message: Any) -> Message:
    """Check one decoded message is a JSON-RPC 2.0 request, notification or response."""
    if isinstance(message, list):
        raise GatewayError(
            ErrorCode.INVALID_REQUEST,
            "Invalid Request: batches are not supported; send one JSON-RPC message per request",
            http_status=400,
        )
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise GatewayError(
            ErrorCode.INVALID_REQUEST,
            'Invalid Request: expected a JSON-RPC 2.0 object with "jsonrpc": "2.0"',
            http_status=400,
        )
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            raise GatewayError(ErrorCode.INVALID_REQUEST, "Invalid Request: 'method' must be a non-empty string", http_status=400)
        if "id" in message and not _valid_id(message["id"]):
            raise GatewayError(ErrorCode.INVALID_REQUEST, "Invalid Request: 'id' must be a string or an integer", http_status=400)
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            raise GatewayError(ErrorCode.INVALID_REQUEST, "Invalid Request: 'params' must be an object", http_status=400)
        return message
    if "id" in message and ("result" in message or "error" in message):
        if not _valid_id(message["id"]):
            raise GatewayError(ErrorCode.INVALID_REQUEST, "Invalid Request: 'id' must be a string or an integer", http_status=400)
        return message
    raise GatewayError(
        ErrorCode.INVALID_REQUEST,
        "Invalid Request: a message needs 'method' (request or notification) or 'id' with 'result'/'error' (response)",
        http_status=400,
    )


def is_request(message: Message) -> bool:
    return "method" in message and "id" in message


def is_notification(message: Message) -> bool:
    return "method" in message and "id" not in message


def is_response(message: Message) -> bool:
    return "method" not in message and "id" in message
