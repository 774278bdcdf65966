"""The MCPB codec on its own: both layouts, every error of the contract, the incremental decoder's
limits, and property-based tests (round trip; arbitrary bytes never crash it or make it hold
more than one frame)."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.tcp_bridge.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_SIZE,
    EnvelopeError,
    Frame,
    FrameDecoder,
    FrameError,
    FrameErrorCode,
    FrameType,
    Layout,
    decode_frame,
    encode,
    encode_frame,
    error_payload,
    negotiate_version,
    open_envelope,
    parse_error_payload,
)

#: The health probe of docs/mcpb.md ("The frame"), byte for byte.
PROBE = bytes.fromhex("4D 43 50 42 01 04 00 00 00 00 00 00")
#: The same probe in the compatibility layout (16-bit version and type).
COMPAT_PROBE = bytes.fromhex("4D 43 50 42 00 01 00 04 00 00 00 00")


def refused(data: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> FrameError:
    decoder = FrameDecoder(max_frame_bytes)
    decoder.feed(data)
    with pytest.raises(FrameError) as caught:
        decoder.frames()
        decoder.eof()
    return caught.value


def test_the_guides_probe_is_a_v1_health_check() -> None:
    frame = decode_frame(PROBE)
    assert frame == Frame(FrameType.HEALTH_CHECK, b"", 1, 0, Layout.V1)
    assert encode_frame(FrameType.HEALTH_CHECK) == PROBE


def test_the_compatibility_layout_decodes_and_encodes() -> None:
    frame = decode_frame(COMPAT_PROBE)
    assert (frame.type, frame.version, frame.flags, frame.layout) == (FrameType.HEALTH_CHECK, 1, 0, Layout.COMPAT)
    assert encode(frame) == COMPAT_PROBE
    payload = b'{"status":"healthy"}'
    wire = encode_frame(FrameType.HEALTH_CHECK, payload, layout=Layout.COMPAT)
    assert wire[4:8] == b"\x00\x01\x00\x04" and wire[8:12] == len(payload).to_bytes(4, "big")
    assert decode_frame(wire).payload == payload


def test_header_fields_are_big_endian() -> None:
    wire = encode_frame(FrameType.REQUEST, b"x" * 258)
    assert wire[:12] == b"MCPB\x01\x01\x00\x00\x00\x00\x01\x02"


@pytest.mark.parametrize(
    ("data", "code", "fatal"),
    [
        (b"GET / HTTP/1.1\r\n", FrameErrorCode.INVALID_MAGIC, True),
        (b"MCPX\x01\x04\x00\x00\x00\x00\x00\x00", FrameErrorCode.INVALID_MAGIC, True),
        (b"MCPB\x02\x04\x00\x00\x00\x00\x00\x00", FrameErrorCode.UNSUPPORTED_VERSION, True),
        (b"MCPB\x00\x02\x00\x04\x00\x00\x00\x00", FrameErrorCode.UNSUPPORTED_VERSION, True),  # compat layout, version 2
        (b"MCPB\x01\x09\x00\x00\x00\x00\x00\x00", FrameErrorCode.UNKNOWN_TYPE, False),
        (b"MCPB\x00\x01\x01\x04\x00\x00\x00\x00", FrameErrorCode.UNKNOWN_TYPE, False),  # compat type 0x0104
        (b"MCPB\x01\x04\x80\x00\x00\x00\x00\x00", FrameErrorCode.BAD_FLAGS, True),
        (b"MCPB\x01\x04\x00\x01\x00\x00\x00\x00", FrameErrorCode.BAD_FLAGS, True),
        (b"MCPB\x01\x01\x00\x00\x00\xa0\x00\x01", FrameErrorCode.FRAME_TOO_LARGE, True),
        (b"MCPB\x01\x01\x00\x00\x00\x00\x00\x10{}", FrameErrorCode.TRUNCATED_FRAME, True),
        (b"MCPB\x01\x01", FrameErrorCode.TRUNCATED_FRAME, True),
    ],
)
def test_every_error_of_the_contract(data: bytes, code: FrameErrorCode, fatal: bool) -> None:
    error = refused(data)
    assert (error.code, error.fatal) == (code, fatal)
    assert parse_error_payload(error.payload)[0] == code.value


def test_unsupported_version_names_the_supported_ones() -> None:
    assert refused(b"MCPB\x07\x04\x00\x00\x00\x00\x00\x00").message == "version 7 is not supported; supported versions: 1"


def test_oversized_length_is_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder(1024)
    decoder.feed(encode_frame(FrameType.REQUEST, b"", max_frame_bytes=None)[:8] + (1025).to_bytes(4, "big"))
    with pytest.raises(FrameError) as caught:
        decoder.next_frame()
    assert caught.value.code is FrameErrorCode.FRAME_TOO_LARGE and caught.value.message == "1025 > 1024"
    # The exact limit is fine.
    assert decode_frame(encode_frame(FrameType.REQUEST, b"x" * 1024, max_frame_bytes=1024), max_frame_bytes=1024).payload == b"x" * 1024


def test_garbage_is_refused_from_its_first_byte() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"G")
    with pytest.raises(FrameError) as caught:
        decoder.next_frame()
    assert caught.value.code is FrameErrorCode.INVALID_MAGIC


def test_a_fatal_error_sticks() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"XXXX")
    for _ in range(2):
        with pytest.raises(FrameError):
            decoder.next_frame()
    with pytest.raises(FrameError):
        decoder.feed(PROBE)


def test_unknown_type_skips_its_payload_and_decoding_goes_on() -> None:
    unknown = b"MCPB\x01\x63\x00\x00\x00\x00\x00\x05hello"
    decoder = FrameDecoder()
    # Byte by byte: the skip must also work when the payload arrives after the header.
    for byte in unknown + PROBE:
        decoder.feed(bytes([byte]))
        try:
            frame = decoder.next_frame()
        except FrameError as error:
            assert error.code is FrameErrorCode.UNKNOWN_TYPE and not error.fatal
            continue
        if frame is not None:
            assert frame.type is FrameType.HEALTH_CHECK
            break
    else:
        pytest.fail("the health check after the unknown frame was not decoded")
    assert decoder.idle


def test_frames_split_anywhere_decode_the_same() -> None:
    wire = b"".join(
        encode_frame(t, p) for t, p in [(FrameType.REQUEST, b'{"a":1}'), (FrameType.HEALTH_CHECK, b""), (FrameType.RESPONSE, b"[]")]
    )
    whole = FrameDecoder()
    whole.feed(wire)
    expected = whole.frames()
    for cut in range(len(wire) + 1):
        decoder = FrameDecoder()
        decoder.feed(wire[:cut])
        got = decoder.frames()
        decoder.feed(wire[cut:])
        assert got + decoder.frames() == expected


def test_wanted_never_asks_beyond_the_current_frame() -> None:
    decoder = FrameDecoder()
    assert decoder.wanted == HEADER_SIZE
    decoder.feed(PROBE[:5])
    assert decoder.wanted == 7
    wire = encode_frame(FrameType.REQUEST, b"x" * 100)
    decoder = FrameDecoder()
    decoder.feed(wire[:12])
    assert decoder.next_frame() is None and decoder.wanted == 100


def test_a_claimed_length_does_not_allocate_it() -> None:
    """A header announcing 9 MiB followed by a few bytes costs a few bytes, not 9 MiB."""
    decoder = FrameDecoder()
    tracemalloc.start()
    try:
        decoder.feed(b"MCPB\x01\x01\x00\x00" + (9 * 1024 * 1024).to_bytes(4, "big") + b"{}")
        assert decoder.next_frame() is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert decoder.buffered == HEADER_SIZE + 2


def test_payload_over_the_limit_is_not_encoded() -> None:
    with pytest.raises(ValueError):
        encode_frame(FrameType.REQUEST, b"x" * 11, max_frame_bytes=10)


def test_error_payloads_are_code_colon_message() -> None:
    payload = error_payload(FrameErrorCode.FRAME_TOO_LARGE, "12582912 > 10485760")
    assert payload == b"frame_too_large: 12582912 > 10485760"
    assert parse_error_payload(payload) == ("frame_too_large", "12582912 > 10485760")


@pytest.mark.parametrize(
    ("offer", "agreed"),
    [
        ({"min_version": 1, "max_version": 3, "preferred_version": 3, "supported_versions": [1, 2, 3]}, 1),
        ({"min_version": 1, "max_version": 1}, 1),
        ({"supported_versions": [3, 1]}, 1),
    ],
)
def test_negotiation_agrees_on_the_highest_common_version(offer: dict[str, object], agreed: int) -> None:
    assert negotiate_version(offer) == agreed


def test_negotiation_without_overlap_is_fatal() -> None:
    with pytest.raises(FrameError) as caught:
        negotiate_version({"min_version": 2, "max_version": 4, "preferred_version": 4, "supported_versions": [2, 3, 4]})
    assert caught.value.code is FrameErrorCode.UNSUPPORTED_VERSION and caught.value.fatal


@pytest.mark.parametrize("offer", [[], {"min_version": "1", "max_version": 2}, {"supported_versions": "1"}, {}])
def test_malformed_negotiation_is_not_fatal(offer: object) -> None:
    with pytest.raises(FrameError) as caught:
        negotiate_version(offer)
    assert caught.value.code is FrameErrorCode.INVALID_NEGOTIATION and not caught.value.fatal


def test_envelopes() -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert open_envelope(message) == (message, None)
    assert open_envelope({"auth_token": "t", "message": message}) == (message, "t")
    assert open_envelope({"message": message}) == (message, None)
    for bad in ({"auth_token": 5, "message": message}, {"auth_token": "t", "message": message, "extra": 1}):
        with pytest.raises(EnvelopeError):
            open_envelope(bad)


# -- properties --------------------------------------------------------------------------------
frames = st.builds(
    Frame,
    type=st.sampled_from(list(FrameType)),
    payload=st.binary(max_size=2048),
    layout=st.sampled_from(list(Layout)),
)


@given(st.lists(frames, max_size=8), st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_in_any_chunking(sent: list[Frame], data: st.DataObject) -> None:
    wire = b"".join(encode(f) for f in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    decoder = FrameDecoder()
    received: list[Frame] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=False):
        decoder.feed(wire[start:end])
        received += decoder.frames()
    decoder.eof()
    assert received == sent


LIMIT = 4096


@given(st.lists(st.binary(max_size=600), max_size=20))
@settings(max_examples=300)
def test_arbitrary_bytes_never_crash_nor_overfill(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(LIMIT)
    for chunk in chunks:
        try:
            decoder.feed(chunk)
            while True:
                try:
                    if decoder.next_frame() is None:
                        break
                except FrameError as error:
                    if error.fatal:
                        raise
        except FrameError as error:
            assert error.fatal and isinstance(error.code, FrameErrorCode)
            return
        # Drained: what is held is less than one frame.
        assert decoder.buffered < HEADER_SIZE + LIMIT
    try:
        decoder.eof()
    except FrameError as error:
        assert error.code is FrameErrorCode.TRUNCATED_FRAME


headers = st.tuples(
    st.just(b"MCPB") | st.binary(min_size=4, max_size=4),
    st.sampled_from([b"\x01\x01\x00\x00", b"\x01\x04\x00\x00", b"\x00\x01\x00\x02", b"\x01\x08\x00\x00"])
    | st.binary(min_size=4, max_size=4),
    st.integers(0, LIMIT + 16) | st.integers(0, 2**32 - 1),
).map(lambda parts: parts[0] + parts[1] + parts[2].to_bytes(4, "big"))


def expected_error(header: bytes) -> FrameErrorCode | None:
    """The contract's verdict on a header, written out independently of the codec."""
    compat = header[4] == 0
    version = int.from_bytes(header[4:6], "big") if compat else header[4]
    frame_type = int.from_bytes(header[6:8], "big") if compat else header[5]
    flags = 0 if compat else int.from_bytes(header[6:8], "big")
    if header[:4] != b"MCPB":
        return FrameErrorCode.INVALID_MAGIC
    if version != 1:
        return FrameErrorCode.UNSUPPORTED_VERSION
    if flags:
        return FrameErrorCode.BAD_FLAGS
    if int.from_bytes(header[8:12], "big") > LIMIT:
        return FrameErrorCode.FRAME_TOO_LARGE
    if not 1 <= frame_type <= 7:
        return FrameErrorCode.UNKNOWN_TYPE
    return None


@given(headers, st.binary(max_size=64))
@settings(max_examples=400)
def test_any_header_is_judged_before_its_payload_arrives(header: bytes, tail: bytes) -> None:
    """Twelve bytes are enough to accept or refuse a header (an oversized length among them), and
    a reader that feeds only `wanted` bytes never makes the decoder hold more than one frame."""
    decoder = FrameDecoder(LIMIT)
    decoder.feed(header)
    expected = expected_error(header)
    try:
        frame = decoder.next_frame()
    except FrameError as error:
        assert error.code is expected
        return
    assert expected is None
    while frame is None and tail:
        chunk, tail = tail[: decoder.wanted], tail[decoder.wanted :]
        decoder.feed(chunk)
        assert decoder.buffered <= HEADER_SIZE + LIMIT
        frame = decoder.next_frame()
