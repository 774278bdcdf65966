"""JSON log lines: one object per line with the fields of docs/telemetry.md.

Every line has `timestamp`, `level`, `service`, `logger` and `message`, the fields the code
passes (`session_id`, `request_id`, `namespace`, `backend`, `method`, `duration_ms`, `status`,
`user`, ...), and, inside a trace, the current span's `trace_id` and `span_id`. Credentials never
reach the output: fields named like a secret are replaced, and bearer/basic credentials, JWTs and
the values of URL query parameters inside a message are masked, whatever the code logging them
intended. Every string is capped (`cap`), so a caller's megabyte id or tool name costs the log a
few hundred bytes, not a megabyte.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber

SERVICE = "mcp-gateway"
REDACTED = "[REDACTED]"
#: LogRecord attributes that are not user fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_SECRET_FIELD = re.compile(r"authorization|token|secret|password|passwd|api[_-]?key|cookie|credential", re.IGNORECASE)
_SECRET_TEXT = re.compile(
    r"\b(?:bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*"  # HTTP credentials
    r"|\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",  # a JWT anywhere
    re.IGNORECASE,
)
#: A query parameter in a URL or request target (`?api_key=...`, `&sig=...`): its value is
#: masked whatever its name, since no list of secret names is complete.
_QUERY_VALUE = re.compile(r"([?&][^\s=&?#\"']+=)[^\s&#\"']+")
#: Longest string field, message and traceback a log line (or a span attribute) carries.
FIELD_CHARS = 512
MESSAGE_CHARS = 2048
TRACEBACK_CHARS = 8192


def cap(text: str, limit: int = FIELD_CHARS) -> str:
    """`text`, cut to `limit` characters with a marker saying how much was left out: everything a
    caller controls (ids, names, URIs, messages quoting them) goes through here before it is
    logged or becomes a span attribute."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"


def scrub_text(text: str) -> str:
    """`text` with credentials and query values masked."""
    if "=" in text and ("?" in text or "&" in text):
        text = _QUERY_VALUE.sub(rf"\1{REDACTED}", text)
    if "eyJ" not in text:
        lowered = text.lower()
        if "bearer" not in lowered and "basic" not in lowered:
            return text  # Most text: the regular expression need not run.
    return _SECRET_TEXT.sub(REDACTED, text)


@functools.lru_cache(maxsize=1024)
def _secret_field(key: str) -> bool:
    return bool(_SECRET_FIELD.search(key))


def scrub(value: Any, key: str = "") -> Any:
    """A field's value as it may be logged: secrets by name replaced, credentials in text masked,
    text capped."""
    if key and _secret_field(key):
        return REDACTED
    if isinstance(value, str):
        return cap(scrub_text(value))
    if isinstance(value, Mapping):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields the code attached to a record (`extra=`), scrubbed (once per record, however
    many handlers ask)."""
    fields = getattr(record, "_scrubbed_fields", None)
    if fields is None:
        fields = {k: scrub(v, k) for k, v in vars(record).items() if k not in _STANDARD and k[0] != "_"}
        record._scrubbed_fields = fields
    return fields


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = SERVICE):
        super().__init__()
        self.service = service
        self._second = -1
        self._prefix = ""

    def _timestamp(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds; the part up to the second is formatted once a second."""
        second = int(created)
        if second != self._second:
            self._second, self._prefix = second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": cap(scrub_text(record.getMessage()), MESSAGE_CHARS),
        }
        entry.update(record_fields(record))
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        if record.exc_info:
            entry["error"] = cap(scrub_text(self.formatException(record.exc_info)), TRACEBACK_CHARS)
        return orjson.dumps(entry, default=str).decode()


class OtlpLogHandler(logging.Handler):
    """Log records to an OpenTelemetry logger (OTLP export), with the same fields and scrubbing as
    the JSON lines; the current context links each record to its trace."""

    _SEVERITY = ((logging.CRITICAL, 21), (logging.ERROR, 17), (logging.WARNING, 13), (logging.INFO, 9), (logging.DEBUG, 5))

    def __init__(self, logger: Any, level: int = logging.NOTSET):
        super().__init__(level)
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("opentelemetry"):
            return  # The exporters' own complaints would feed back into the exporter.
        try:
            severity = next((number for level, number in self._SEVERITY if record.levelno >= level), 1)
            attributes = {k: _attribute(v) for k, v in record_fields(record).items() if v is not None}
            attributes["logger"] = record.name
            if record.exc_info:
                attributes["exception.stacktrace"] = cap(scrub_text(logging.Formatter().formatException(record.exc_info)), TRACEBACK_CHARS)
            self._logger.emit(
                timestamp=int(record.created * 1e9),
                observed_timestamp=time.time_ns(),
                severity_number=SeverityNumber(severity),
                severity_text=record.levelname,
                body=cap(scrub_text(record.getMessage()), MESSAGE_CHARS),
                attributes=attributes,
            )
        except Exception:
            self.handleError(record)


def _attribute(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        return value
    return orjson.dumps(value, default=str).decode()


def configure(level: str = "INFO", service: str = SERVICE) -> None:
    # The lines carry none of these; not collecting them per record is the logging module's own
    # documented optimisation (no stack walk for the caller, no thread/process lookups).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
