"""An incremental, bounded Server-Sent Events parser for upstream streams."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SseEvent:
    data: str
    id: str | None = None
    retry: int | None = None


class SseParser:
    """Feed bytes as they arrive; get complete events back. An event larger than `max_bytes`
    raises ValueError instead of growing the buffer without bound."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._data: list[bytes] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._size = 0

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        events: list[SseEvent] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if line:
                self._field(line)
            elif self._data or self._id is not None:
                events.append(SseEvent(b"\n".join(self._data).decode(), self._id, self._retry))
                self._data, self._id, self._retry, self._size = [], None, None, 0
        del self._buffer[:start]
        if len(self._buffer) + self._size > self.max_bytes:
            raise ValueError(f"an SSE event exceeds {self.max_bytes} bytes")
        return events

    def _field(self, line: bytes) -> None:
        if line.startswith(b":"):
            return  # A comment (keep-alive).
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._size += len(value)
        elif name == b"id":
            self._id = value.decode()
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
