"""Where the repository and the test tree's own files are, wherever a test module sits."""

from __future__ import annotations

from pathlib import Path

#: The repository's root (the gateway process runs with it as working directory).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: MCP servers the tests run as processes.
SERVERS = REPO_ROOT / "tests" / "servers"
#: Static inputs (schemas) the tests read.
FIXTURES = REPO_ROOT / "tests" / "fixtures"
