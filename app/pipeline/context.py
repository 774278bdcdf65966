"""Who is asking, over what, and who observes the request: what the edges hand the pipeline with
every message, and what the pipeline's request steps hand on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from app.auth import ANONYMOUS, Principal


class RequestObserver(Protocol):
    """What the pipeline tells a request's telemetry (`app.telemetry.RequestScope`) while it works."""

    def route(self, namespace: str, backend: str | None = None) -> None:
        """The namespace the request asked for, or the replica a backend call went to."""


class _Unobserved:
    """The observer of a message that is not a request the pipeline answers (nothing to label)."""

    def route(self, namespace: str, backend: str | None = None) -> None:
        pass


UNOBSERVED: RequestObserver = _Unobserved()


@dataclass
class RequestContext:
    """Who is asking, over what, for the pipeline's steps and telemetry."""

    protocol: str
    principal: Principal = ANONYMOUS
    client_address: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: The request's observer, bound by the pipeline's request steps (`observed_by`).
    observer: RequestObserver = UNOBSERVED

    def observed_by(self, observer: RequestObserver) -> RequestContext:
        """This context for one request, observed by `observer` (an edge's context may serve a
        whole connection: it is not changed)."""
        return replace(self, observer=observer)
