"""Where gateway sessions live: in memory for one process, in Redis for many replicas."""

from app.state.base import SessionRecord, StateStore, UpstreamBinding
from app.state.factory import open_limiter_pool, open_store

__all__ = ["SessionRecord", "StateStore", "UpstreamBinding", "open_limiter_pool", "open_store"]
