"""Registry of subcommands: each entry adds its parser and sets `handler`."""

from __future__ import annotations

from app.cli.check_config import register as register_check_config
from app.cli.serve import register as register_serve
from app.ops import register as register_dashboards
from app.tcp_bridge.command import register as register_bridge

REGISTRARS = [register_serve, register_check_config, register_bridge, register_dashboards]
