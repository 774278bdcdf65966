"""Edges: each turns its wire into JSON-RPC messages plus a RequestContext, and back."""
