"""MCPB frames: encode and decode, both header layouts, every error of the contract. No I/O.

A frame is a 12-byte big-endian header and a payload (`docs/mcpb.md`, "The frame"):

    v1 layout      magic "MCPB" | version u8 | type u8  | flags u16 | length u32 | payload
    compat layout  magic "MCPB" | version u16           | type u16  | length u32 | payload

A header whose byte 4 is 0x00 is read in the compatibility layout (an older Go implementation
wrote version and type as 16-bit fields; `00 01` is its version 1). The decoder is incremental:
feed it bytes as they arrive and take frames out. It judges a header as soon as the 12 bytes are
there, so an oversized length is refused before any of the payload is read, and it never holds
more than one frame's worth of input (header + `max_frame_bytes`) beyond what it was fed.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any

import orjson

MAGIC = b"MCPB"
HEADER_SIZE = 12
#: Versions this implementation speaks, lowest first.
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
CURRENT_VERSION = SUPPORTED_VERSIONS[-1]
DEFAULT_MAX_FRAME_BYTES = 10 * 1024 * 1024  # 10 MiB, the contract's default
#: Flag bits defined by version 1: none.
NO_FLAGS = 0x0000

_V1 = struct.Struct(">4sBBHI")
_COMPAT = struct.Struct(">4sHHI")


class FrameType(enum.IntEnum):
    REQUEST = 1
    RESPONSE = 2
    CONTROL = 3
    HEALTH_CHECK = 4
    ERROR = 5
    VERSION_NEGOTIATION = 6
    VERSION_ACK = 7

    @property
    def label(self) -> str:
        """The name telemetry uses: `request`, `health_check`, `version_ack`, ..."""
        return self.name.lower()


class Layout(enum.Enum):
    """How version and type sit in the header."""

    V1 = "v1"  #: 1-byte version, 1-byte type, 2-byte flags
    COMPAT = "compat"  #: 2-byte version, 2-byte type, no flags


class FrameErrorCode(str, enum.Enum):
    """The `code` part of an Error frame (`code: message`)."""

    INVALID_MAGIC = "invalid_magic"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TYPE = "unknown_type"
    UNEXPECTED_TYPE = "unexpected_type"
    BAD_FLAGS = "bad_flags"
    FRAME_TOO_LARGE = "frame_too_large"
    TRUNCATED_FRAME = "truncated_frame"
    INVALID_JSON = "invalid_json"
    INVALID_NEGOTIATION = "invalid_negotiation"
    UNAUTHORIZED = "unauthorized"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    IDLE_TIMEOUT = "idle_timeout"
    AUTH_TIMEOUT = "auth_timeout"
    SLOW_CONSUMER = "slow_consumer"
    UPSTREAM_CLOSED = "upstream_closed"
    INTERNAL_ERROR = "internal_error"


def error_payload(code: FrameErrorCode, message: str) -> bytes:
    """An Error frame's payload, `code: message` (read back by `parse_error_payload`)."""
    return f"{code.value}: {message}".encode()


class FrameError(Exception):
    """A frame the contract refuses. `fatal` errors end the connection after the Error frame;
    after a non-fatal one the decoder has consumed the offending frame and can go on."""

    def __init__(self, code: FrameErrorCode, message: str, *, fatal: bool, layout: Layout | None = None, skip: int = 0):
        super().__init__(error_payload(code, message).decode())
        self.code = code
        self.message = message
        self.fatal = fatal
        #: The layout the offending header was written in, when it could be told.
        self.layout = layout
        #: Payload bytes that follow a refused (non-fatal) header and must be skipped.
        self.skip = skip

    @property
    def payload(self) -> bytes:
        """The Error frame that reports it."""
        return error_payload(self.code, self.message)


@dataclass(frozen=True, slots=True)
class Frame:
    type: FrameType
    payload: bytes = b""
    version: int = CURRENT_VERSION
    flags: int = NO_FLAGS
    layout: Layout = Layout.V1

    def json(self) -> Any:
        """The payload as JSON; an empty payload is None. Raises FrameError(invalid_json)."""
        return decode_json(self.payload)

    def text(self) -> str:
        """The payload as UTF-8 text (Error frames), undecodable bytes replaced."""
        return self.payload.decode("utf-8", errors="replace")


# -- encoding ---------------------------------------------------------------------------------
def encode_header(
    frame_type: int, length: int, *, layout: Layout = Layout.V1, version: int = CURRENT_VERSION, flags: int = NO_FLAGS
) -> bytes:
    if not 0 <= length <= 0xFFFFFFFF:
        raise ValueError(f"payload length {length} does not fit 32 bits")
    if layout is Layout.COMPAT:
        if flags:
            raise ValueError("the compatibility layout has no flags")
        return _COMPAT.pack(MAGIC, version, int(frame_type), length)
    return _V1.pack(MAGIC, version, int(frame_type), flags, length)


def encode_frame(
    frame_type: int,
    payload: bytes = b"",
    *,
    layout: Layout = Layout.V1,
    version: int = CURRENT_VERSION,
    flags: int = NO_FLAGS,
    max_frame_bytes: int | None = DEFAULT_MAX_FRAME_BYTES,
) -> bytes:
    """Header + payload. Refuses (ValueError) a payload the peer's limit would refuse."""
    if max_frame_bytes is not None and len(payload) > max_frame_bytes:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the frame limit of {max_frame_bytes}")
    return encode_header(frame_type, len(payload), layout=layout, version=version, flags=flags) + payload


def encode(frame: Frame, *, max_frame_bytes: int | None = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    return encode_frame(
        frame.type, frame.payload, layout=frame.layout, version=frame.version, flags=frame.flags, max_frame_bytes=max_frame_bytes
    )


def encode_json(value: Any) -> bytes:
    return orjson.dumps(value)


def decode_json(payload: bytes) -> Any:
    if not payload:
        return None
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise FrameError(FrameErrorCode.INVALID_JSON, f"payload is not valid UTF-8 JSON ({exc})", fatal=False) from None


def parse_error_payload(payload: bytes) -> tuple[str, str]:
    """`code: message` -> (code, message); a payload without a colon is all message."""
    text = payload.decode("utf-8", errors="replace")
    code, sep, message = text.partition(":")
    return (code.strip(), message.strip()) if sep else ("", text.strip())


# -- decoding ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Header:
    type: FrameType
    version: int
    flags: int
    length: int
    layout: Layout


def sniff_layout(header: bytes | bytearray | memoryview) -> Layout:
    """The layout a header (at least 6 bytes) is written in: byte 4 == 0x00 means 16-bit fields."""
    return Layout.COMPAT if header[4] == 0 else Layout.V1


def parse_header(
    header: bytes | bytearray | memoryview, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, allowed_flags: int = NO_FLAGS
) -> Header:
    """Judge a 12-byte header. Raises FrameError; only `unknown_type` is non-fatal (the caller
    must still skip the payload: `error.skip` bytes)."""
    if len(header) < HEADER_SIZE:
        raise ValueError(f"a header is {HEADER_SIZE} bytes, got {len(header)}")
    if bytes(header[0:4]) != MAGIC:
        raise FrameError(FrameErrorCode.INVALID_MAGIC, f'expected 4d435042 ("MCPB"), got {bytes(header[0:4]).hex()}', fatal=True)
    layout = sniff_layout(header)
    if layout is Layout.COMPAT:
        _, version, type_code, length = _COMPAT.unpack_from(header)
        flags = NO_FLAGS
    else:
        _, version, type_code, flags, length = _V1.unpack_from(header)
    if version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise FrameError(
            FrameErrorCode.UNSUPPORTED_VERSION,
            f"version {version} is not supported; supported versions: {supported}",
            fatal=True,
            layout=layout,
        )
    if flags & ~allowed_flags:
        raise FrameError(
            FrameErrorCode.BAD_FLAGS,
            f"flags 0x{flags:04x} set bits that were not negotiated (allowed 0x{allowed_flags:04x})",
            fatal=True,
            layout=layout,
        )
    if length > max_frame_bytes:
        raise FrameError(FrameErrorCode.FRAME_TOO_LARGE, f"{length} > {max_frame_bytes}", fatal=True, layout=layout)
    try:
        frame_type = FrameType(type_code)
    except ValueError:
        raise FrameError(
            FrameErrorCode.UNKNOWN_TYPE,
            f"frame type {type_code} is not defined in version {version}",
            fatal=False,
            layout=layout,
            skip=length,
        ) from None
    return Header(frame_type, version, flags, length, layout)


def decode_frame(data: bytes, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, allowed_flags: int = NO_FLAGS) -> Frame:
    """Exactly one whole frame (tests and tools); trailing or missing bytes are errors."""
    decoder = FrameDecoder(max_frame_bytes, allowed_flags=allowed_flags)
    decoder.feed(data)
    frame = decoder.next_frame()
    if frame is None:
        decoder.eof()
        raise FrameError(FrameErrorCode.TRUNCATED_FRAME, "no frame", fatal=True)
    if decoder.buffered:
        raise ValueError(f"{decoder.buffered} bytes after the frame")
    return frame


class FrameDecoder:
    """Incremental decoder: `feed()` bytes, then call `next_frame()` until it returns None.

    `next_frame()` raises FrameError for a refused frame; after a non-fatal error (unknown type)
    the frame has been skipped and decoding can continue; after a fatal one the stream is
    unusable and every later call raises the same error. `wanted` says how many more bytes the
    current frame needs: a reader that feeds at most that much keeps the decoder's buffer within
    one frame (`HEADER_SIZE + max_frame_bytes`). Payload memory grows with the bytes actually
    received, never with the length a header merely claims.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, *, allowed_flags: int = NO_FLAGS):
        if max_frame_bytes < 0:
            raise ValueError("max_frame_bytes must be >= 0")
        self.max_frame_bytes = max_frame_bytes
        self.allowed_flags = allowed_flags
        self._buffer = bytearray()
        self._header: Header | None = None
        self._skip = 0  # payload bytes of an unknown-type frame still to discard
        self._fatal: FrameError | None = None
        #: Layout of the first header seen (the connection's layout), None before one.
        self.first_layout: Layout | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def wanted(self) -> int:
        """Bytes still needed to complete the current header or frame (at least 1)."""
        if self._skip:
            return self._skip
        if self._header is None:
            return max(1, HEADER_SIZE - len(self._buffer))
        return max(1, HEADER_SIZE + self._header.length - len(self._buffer))

    @property
    def idle(self) -> bool:
        """No partial frame is held: EOF here is a clean end of stream."""
        return not self._buffer and self._header is None and not self._skip

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._skip:
            drop = min(self._skip, len(data))
            self._skip -= drop
            data = memoryview(data)[drop:]
        self._buffer += data

    def next_frame(self) -> Frame | None:
        if self._fatal is not None:
            raise self._fatal
        if self._skip:
            return None
        if self._header is None:
            if len(self._buffer) < HEADER_SIZE:
                # Judge the magic as soon as it can be judged: garbage fails fast.
                if len(self._buffer) and not MAGIC.startswith(bytes(self._buffer[:4])):
                    self._fail(
                        FrameError(
                            FrameErrorCode.INVALID_MAGIC, f'expected 4d435042 ("MCPB"), got {bytes(self._buffer[:4]).hex()}', fatal=True
                        )
                    )
                return None
            if self.first_layout is None and self._buffer[0:4] == MAGIC:
                self.first_layout = sniff_layout(self._buffer)
            try:
                self._header = parse_header(self._buffer, max_frame_bytes=self.max_frame_bytes, allowed_flags=self.allowed_flags)
            except FrameError as error:
                if error.fatal:
                    self._fail(error)
                length = error.skip
                available = len(self._buffer) - HEADER_SIZE
                del self._buffer[: HEADER_SIZE + min(length, available)]
                self._skip = max(0, length - available)
                raise
        end = HEADER_SIZE + self._header.length
        if len(self._buffer) < end:
            return None
        header = self._header
        payload = bytes(self._buffer[HEADER_SIZE:end])
        del self._buffer[:end]
        self._header = None
        return Frame(header.type, payload, header.version, header.flags, header.layout)

    def frames(self) -> list[Frame]:
        """Every complete frame buffered now (raises at the first refused one)."""
        out = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out

    def eof(self) -> None:
        """The peer stopped sending. Raises FrameError(truncated_frame) if a frame was cut short."""
        if self._fatal is not None:
            return
        if not self.idle:
            if self._header is not None:
                detail = f"{self._header.length} payload bytes announced, {len(self._buffer) - HEADER_SIZE} received"
            elif self._skip:
                detail = f"{self._skip} payload bytes of a skipped frame missing"
            else:
                detail = f"{len(self._buffer)} of {HEADER_SIZE} header bytes received"
            self._fail(
                FrameError(
                    FrameErrorCode.TRUNCATED_FRAME, f"connection ended inside a frame: {detail}", fatal=True, layout=self._layout_hint()
                )
            )

    def _layout_hint(self) -> Layout | None:
        if self._header is not None:
            return self._header.layout
        return sniff_layout(self._buffer) if len(self._buffer) >= 5 else None

    def _fail(self, error: FrameError) -> None:
        self._fatal = error
        self._buffer = bytearray()
        self._header = None
        raise error


# -- payload helpers shared by the bridge, the client and tests ---------------------------------
def negotiate_version(offer: Any, supported: tuple[int, ...] = SUPPORTED_VERSIONS) -> int:
    """The agreed version for a VersionNegotiation payload: the highest both sides support.

    The client's versions are `supported_versions` when given, else `min_version..max_version`.
    Raises FrameError(invalid_negotiation) for a malformed offer, and
    FrameError(unsupported_version, fatal) when there is no overlap.
    """
    if not isinstance(offer, dict):
        raise FrameError(FrameErrorCode.INVALID_NEGOTIATION, "payload must be a JSON object", fatal=False)

    def version_field(name: str) -> int | None:
        value = offer.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise FrameError(FrameErrorCode.INVALID_NEGOTIATION, f"'{name}' must be an integer 0..65535", fatal=False)
        return value

    listed = offer.get("supported_versions")
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in listed):
            raise FrameError(FrameErrorCode.INVALID_NEGOTIATION, "'supported_versions' must be a list of integers", fatal=False)
        theirs: set[int] = set(listed)
    else:
        low, high = version_field("min_version"), version_field("max_version")
        if low is None or high is None:
            raise FrameError(
                FrameErrorCode.INVALID_NEGOTIATION, "needs 'supported_versions' or 'min_version' and 'max_version'", fatal=False
            )
        theirs = set(range(low, high + 1))
    version_field("preferred_version")
    common = theirs & set(supported)
    if not common:
        mine = ", ".join(str(v) for v in supported)
        offered = ", ".join(str(v) for v in sorted(theirs)[:16]) or "none"
        raise FrameError(
            FrameErrorCode.UNSUPPORTED_VERSION, f"no common version (offered: {offered}; supported versions: {mine})", fatal=True
        )
    return max(common)


class EnvelopeError(ValueError):
    """A Request payload that is neither a JSON-RPC message nor a well-formed envelope."""


def open_envelope(value: Any) -> tuple[Any, str | None]:
    """A Request payload is a JSON-RPC message or `{"auth_token": "...", "message": {...}}`.

    Returns (message, token or None). An object without `jsonrpc` but with `message` is an
    envelope; anything else is returned as the message itself for JSON-RPC validation.
    """
    if not isinstance(value, dict) or "jsonrpc" in value or "message" not in value:
        return value, None
    extra = set(value) - {"auth_token", "message"}
    if extra:
        raise EnvelopeError(f"unknown envelope keys: {', '.join(sorted(extra))}")
    token = value.get("auth_token")
    if token is not None and (not isinstance(token, str) or not token):
        raise EnvelopeError("'auth_token' must be a non-empty string")
    return value["message"], token


def make_envelope(message: Any, auth_token: str | None) -> Any:
    """The Request payload carrying `message`, with the credentials when there are any."""
    return message if auth_token is None else {"auth_token": auth_token, "message": message}
