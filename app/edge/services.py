"""What every edge needs before the pipeline, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth import Authenticator
from app.edge.client_address import ClientResolver
from app.edge.origin import OriginPolicy
from app.pipeline.dispatch import Pipeline
from app.pipeline.drain import Drain


@dataclass(frozen=True)
class EdgeServices:
    """The pipeline and the checks both edges make on a caller (origin, client address,
    credentials), the drain they register with, and the message bound they enforce."""

    pipeline: Pipeline
    policy: OriginPolicy
    clients: ClientResolver
    auth: Authenticator
    drain: Drain
    max_body_bytes: int


class Edge:
    """An edge: a transport in front of the pipeline, with the services every edge shares."""

    def __init__(self, services: EdgeServices):
        self.pipeline = services.pipeline
        self.policy = services.policy
        self.clients = services.clients
        self.auth = services.auth
        self.drain = services.drain
        self.max_body = services.max_body_bytes
