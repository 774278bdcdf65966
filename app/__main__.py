"""`python -m app` is the `mcp-gateway` command."""

from app.cli import main

raise SystemExit(main())
