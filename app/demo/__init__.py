"""Demo MCP servers shipped with the gateway (need the `demo` extra: the official `mcp` SDK).

`python -m app.demo.weather` and `python -m app.demo.notes` run them; `app.demo.runner`
holds the transport plumbing they share.
"""
