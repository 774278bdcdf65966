"""The router's clash rule: two namespaces exposing one name or URI is a configuration error
(-32053) whose advice, followed, removes the clash."""

from __future__ import annotations

import pytest

from app.core.jsonrpc import ErrorCode, GatewayError
from app.pipeline.routing import PROMPT, RESOURCE, TEMPLATE, TOOL, Namespace, Router


def clash(kind: str, key: str, prefix_b: bool) -> GatewayError | None:
    """Let namespace `a` (unprefixed) then `b` expose `key`; the error, if any."""
    namespaces = {"a": Namespace("a", prefix=False, replicas=[]), "b": Namespace("b", prefix=prefix_b, replicas=[])}
    router = Router(namespaces, "__")
    router.learn(kind, namespaces["a"], key)
    try:
        router.learn(kind, namespaces["b"], key)
    except GatewayError as error:
        return error
    return None


@pytest.mark.parametrize("kind", [TOOL, PROMPT])
def test_a_name_clash_advises_the_prefix_that_removes_it(kind: str) -> None:
    error = clash(kind, "echo", prefix_b=False)
    assert error is not None and error.code == ErrorCode.CONFIGURATION_ERROR
    assert "namespaces 'a' and 'b'" in error.message and "set 'prefix: true' on namespace 'b'" in error.message
    assert clash(kind, "echo", prefix_b=True) is None  # The advice followed: no clash.


@pytest.mark.parametrize(("kind", "key"), [(RESOURCE, "info://same"), (TEMPLATE, "items://{id}")])
def test_a_uri_clash_does_not_advise_a_prefix_that_cannot_remove_it(kind: str, key: str) -> None:
    error = clash(kind, key, prefix_b=False)
    assert error is not None and error.code == ErrorCode.CONFIGURATION_ERROR
    assert "prefix: true" not in error.message and "give one of them a prefix" not in error.message
    assert "only one namespace may serve it" in error.message
    assert clash(kind, key, prefix_b=True) is not None  # Why: a prefix never renames URIs.
