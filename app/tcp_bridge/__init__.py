"""MCPB/TCP bridge: binary-framed MCP JSON-RPC over long-lived TCP connections, relayed to the
gateway's WebSocket endpoint. The contract is `docs/mcpb.md`."""

from app.tcp_bridge.client import MCPBClient, MCPBError, RpcError, read_frame
from app.tcp_bridge.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_SIZE,
    MAGIC,
    SUPPORTED_VERSIONS,
    Frame,
    FrameDecoder,
    FrameError,
    FrameErrorCode,
    FrameType,
    Layout,
    decode_frame,
    encode_frame,
)
from app.tcp_bridge.config import BridgeConfig

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "HEADER_SIZE",
    "MAGIC",
    "SUPPORTED_VERSIONS",
    "BridgeConfig",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameErrorCode",
    "FrameType",
    "Layout",
    "MCPBClient",
    "MCPBError",
    "RpcError",
    "decode_frame",
    "encode_frame",
    "read_frame",
]
