"""`python -m app.tcp_bridge` is `mcp-gateway bridge`."""

from app.tcp_bridge.command import main

raise SystemExit(main())
