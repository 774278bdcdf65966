"""The process's telemetry as the rest of the code reaches it: what `setup` installed, or no-ops.

Code that records calls `current_instruments()` and `tracer()` at the moment it records, so importing a
module never depends on whether, or when, telemetry was set up (tests build gateways in-process
without any).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.metrics import NoOpMeter

from app.telemetry.instruments import Instruments
from app.telemetry.labels import DEFAULT_USER_LABEL, UserLabelMode

SCOPE = "mcp_gateway"

_instruments: Instruments | None = None
_tracer: trace.Tracer = trace.NoOpTracer()


def current_instruments() -> Instruments:
    """The process's instruments (no-ops until `setup`)."""
    global _instruments
    if _instruments is None:
        _instruments = Instruments(NoOpMeter(SCOPE))
    return _instruments


def tracer() -> trace.Tracer:
    """The gateway's tracer (a no-op tracer until `setup`, which still carries incoming context)."""
    return _tracer


def install(new_instruments: Instruments | None, new_tracer: trace.Tracer | None) -> None:
    """Make these the process's instruments and tracer (None: back to no-ops)."""
    global _instruments, _tracer
    _instruments = new_instruments
    _tracer = new_tracer or trace.NoOpTracer()


def disabled_instruments(user_label: UserLabelMode = DEFAULT_USER_LABEL) -> Instruments:
    """Instruments that record nothing (telemetry off), still applying the label rules."""
    return Instruments(NoOpMeter(SCOPE), user_label)
