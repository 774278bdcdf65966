"""Demo MCP servers shipped with the gateway (need the `demo` extra: the official `mcp` SDK).

`python -m app.demo.weather` and `python -m app.demo.notes` run them; `app.demo.runner`
holds the transport plumbing they share.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.config import GatewayConfig

INSTALL_HINT = "install the demo extra: pip install 'mcp-gateway[demo]' (or serve your own servers: --config FILE)"


def sdk_problem(config: GatewayConfig) -> str | None:
    """Why the demo servers `config` runs over stdio cannot start, or None.

    Checked at start-up because otherwise every call to them fails later with a broken
    connection that does not say what is missing. Only the package's presence and version are
    read: importing the SDK would cost the gateway most of a second for nothing.
    """
    demos = sorted({ns for ns, cfg in config.namespaces.items() for b in cfg.backends if _runs_demo(b.command)})
    if not demos:
        return None
    if importlib.util.find_spec("mcp") is None:
        found = "the MCP SDK (package 'mcp') is not installed"
    else:
        try:
            sdk = version("mcp")
        except PackageNotFoundError:  # Importable without metadata (a source tree on the path): trust it.
            return None
        if sdk.startswith("1."):
            return None
        found = f"they need the MCP SDK 1.x, and {sdk} is installed"
    return f"the bundled demo servers ({', '.join(demos)}) cannot start: {found}; {INSTALL_HINT}"


def _runs_demo(command: list[str] | None) -> bool:
    """A stdio command of the form `<python> -m app.demo.<server>`."""
    return command is not None and len(command) >= 3 and command[1] == "-m" and command[2].startswith(__name__ + ".")
