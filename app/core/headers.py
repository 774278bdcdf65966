"""HTTP headers the gateway's own parts agree on (the MCP ones are the specification's)."""

#: Header the TCP bridge sets on its upstream WebSocket: the client's real transport. Believed
#: only from a trusted proxy (`trusted_proxies`).
TRANSPORT_HEADER = "x-mcp-transport"
#: Transports a trusted sidecar relays; their latency is recorded by the sidecar, end to end.
RELAYED_TRANSPORTS = frozenset({"tcp"})
