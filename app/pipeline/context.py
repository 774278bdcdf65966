"""Who is asking, over what: what the edges hand the pipeline with every message."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.auth import ANONYMOUS, Principal


@dataclass
class RequestContext:
    """Who is asking, over what, for the pipeline's steps and telemetry."""

    protocol: str
    principal: Principal = ANONYMOUS
    client_address: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
