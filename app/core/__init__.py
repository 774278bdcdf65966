"""The bottom layer: the JSON-RPC envelope, MCP constants, one error hierarchy, events."""
