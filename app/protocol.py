"""MCP protocol constants the gateway negotiates and checks."""

from __future__ import annotations

#: Streamable HTTP revisions served on `/mcp`, oldest first.
SUPPORTED_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]
#: What a request without `MCP-Protocol-Version` is taken to speak (the specification's rule).
DEFAULT_HEADER_VERSION = "2025-03-26"

SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"


def negotiate(requested: object) -> str:
    """The client's version when we speak it, else our latest (the client may then disconnect)."""
    return requested if isinstance(requested, str) and requested in SUPPORTED_VERSIONS else LATEST_VERSION
