"""The transport-agnostic path every request takes: session, rate limit, route, breaker, backend call, map back."""
