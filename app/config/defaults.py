"""The embedded default configuration: what `serve` runs without a file."""

from __future__ import annotations

import sys
from typing import Any


def demo_namespaces() -> dict[str, Any]:
    """The embedded default: the bundled demo servers over stdio, nothing else to start."""
    return {
        "weather": {"backends": [{"name": "weather-1", "command": [sys.executable, "-m", "app.demo.weather"]}]},
        "notes": {"backends": [{"name": "notes-1", "command": [sys.executable, "-m", "app.demo.notes"]}]},
    }
