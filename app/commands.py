"""Registry of subcommands: each entry adds its parser and sets `handler`."""

from __future__ import annotations

from app.serve_command import register as register_serve
from app.config_command import register as register_check_config

REGISTRARS = [register_serve, register_check_config]
