"""MCP gateway: one front door for many MCP servers."""

__version__ = "0.1.0"
