"""Pagination of aggregated lists: the gateway's cursors walk every namespace's pages, whatever the
backends' page sizes, and a single namespace's own cursors pass through untouched."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pytest

from tests.support import Backend, start_backend, start_gateway, stdio_command
from tests.support.mcp_http import RawSession

#: Flags of the paginating backends: 18 tools, 4 prompts, 4 resources, two at a time.
PAGED = {"page_size": 2, "extra_tools": 5, "extra_prompts": 3, "extra_resources": 3}
#: The same items in one page.
UNPAGED = {"extra_tools": 5, "extra_prompts": 3, "extra_resources": 3}
#: Namespaces in configuration order (the order of the merged list): paged, unpaged, paged.
ORDER = ("alpha", "gamma", "beta")
LISTS = (("tools/list", "tools", "name"), ("prompts/list", "prompts", "name"), ("resources/list", "resources", "uri"))
MAX_PAGES = 100
T = TypeVar("T")


@dataclass
class Stack:
    multi: str  # gateway: alpha (HTTP, paged), gamma (WebSocket, one page), beta (stdio, paged)
    single: str  # gateway: alpha alone, prefixed
    single_unprefixed: str  # gateway: alpha alone, unprefixed
    alpha: Backend


def _start_all(*starts: Callable[[], T]) -> list[T]:
    """Start independent processes side by side; if any fails, stop those that started."""
    with ThreadPoolExecutor(len(starts)) as pool:
        futures = [pool.submit(start) for start in starts]
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        for future in futures:
            if future.exception() is None:
                future.result().proc.stop()  # type: ignore[attr-defined]
        raise failed[0]  # type: ignore[misc]
    return [f.result() for f in futures]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("pagination")
    alpha, gamma = _start_all(
        lambda: start_backend("alpha", workdir, "http", **PAGED), lambda: start_backend("gamma", workdir, "ws", **UNPAGED)
    )
    alpha_backend = [{"name": "alpha-1", "url": alpha.url}]
    try:
        multi, single, unprefixed = _start_all(
            lambda: start_gateway(
                {
                    "namespaces": {
                        "alpha": {"backends": alpha_backend},
                        "gamma": {"backends": [{"name": "gamma-1", "url": gamma.url}]},
                        "beta": {"backends": [{"name": "beta-1", "command": stdio_command("beta", **PAGED)}]},
                    }
                },
                workdir,
            ),
            lambda: start_gateway({"namespaces": {"alpha": {"backends": alpha_backend}}}, workdir),
            lambda: start_gateway({"namespaces": {"alpha": {"prefix": False, "backends": alpha_backend}}}, workdir),
        )
    except BaseException:
        alpha.proc.stop()
        gamma.proc.stop()
        raise
    yield Stack(multi.url, single.url, unprefixed.url, alpha)
    for proc in (multi.proc, single.proc, unprefixed.proc, alpha.proc, gamma.proc):
        proc.stop()


def open_session(base: str) -> RawSession:
    raw = RawSession(base)
    raw.initialize()
    return raw


@pytest.fixture
def multi(stack: Stack) -> Iterator[RawSession]:
    raw = open_session(stack.multi)
    yield raw
    raw.close()


@pytest.fixture
def direct(stack: Stack) -> Iterator[RawSession]:
    """A session straight to the alpha backend, bypassing any gateway."""
    raw = open_session(stack.alpha.url.removesuffix("/mcp"))
    yield raw
    raw.close()


@dataclass
class Walk:
    pages: list[list[str]]
    cursors: list[str]

    @property
    def keys(self) -> list[str]:
        return [key for page in self.pages for key in page]


def walk(session: RawSession, method: str, result_key: str, key_field: str) -> Walk:
    """Follow `nextCursor` from the first page to the last."""
    pages: list[list[str]] = []
    cursors: list[str] = []
    params: dict[str, Any] = {}
    for _ in range(MAX_PAGES):
        answer = session.call(method, params)
        assert "result" in answer, answer
        pages.append([item[key_field] for item in answer["result"][result_key]])
        cursor = answer["result"].get("nextCursor")
        if not cursor:
            return Walk(pages, cursors)
        cursors.append(cursor)
        params = {"cursor": cursor}
    raise AssertionError(f"{method}: more than {MAX_PAGES} pages; cursors {cursors[-3:]}")


def expected_keys(direct_keys: list[str], namespace: str, key_field: str) -> list[str]:
    """What one namespace contributes: names prefixed, URIs as they are, with the backend's name."""
    keys = [key.replace("alpha", namespace) if key_field == "uri" else key for key in direct_keys]
    return [f"{namespace}__{key}" for key in keys] if key_field == "name" else keys


@pytest.mark.parametrize(("method", "result_key", "key_field"), LISTS, ids=[m for m, _, _ in LISTS])
def test_walking_the_merged_list_visits_every_item_once_in_order(
    multi: RawSession, direct: RawSession, method: str, result_key: str, key_field: str
) -> None:
    backend_walk = walk(direct, method, result_key, key_field)
    assert len(backend_walk.pages) > 1, "the backend should paginate this list"
    expected = [key for ns in ORDER for key in expected_keys(backend_walk.keys, ns, key_field)]

    first = walk(multi, method, result_key, key_field)
    assert len(first.keys) == len(set(first.keys)), f"repeated items: {first.keys}"
    assert first.keys == expected
    assert len(first.pages) > 1 and all(first.pages), first.pages
    # The same walk again gives the same pages and cursors: the order is stable.
    assert walk(multi, method, result_key, key_field) == first


def test_templates_of_every_namespace_are_merged(multi: RawSession) -> None:
    templates = walk(multi, "resources/templates/list", "resourceTemplates", "uriTemplate").keys
    assert templates == [f"items://{ns}/{{item_id}}" for ns in ORDER]


def test_items_reached_through_a_later_page_are_callable(multi: RawSession) -> None:
    tools = walk(multi, "tools/list", "tools", "name").keys
    assert "beta__t4" in tools and "alpha__t4" in tools
    for name, expected in (("alpha__t4", "t4"), ("beta__t4", "t4"), ("gamma__whoami", "gamma"), ("beta__whoami", "beta")):
        answer = multi.call("tools/call", {"name": name, "arguments": {}})
        assert answer["result"]["content"][0]["text"] == expected
    prompt = multi.call("prompts/get", {"name": "beta__p2", "arguments": {}})
    assert prompt["result"]["messages"][0]["content"]["text"] == "prompt 2"
    resource = multi.call("resources/read", {"uri": "extra://beta/2"})
    assert resource["result"]["contents"][0]["text"] == "resource 2"


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        base64.urlsafe_b64encode(b"garbage").decode(),
        _b64([99, ""]),
        _b64([-1, ""]),
        _b64(["alpha", ""]),
        _b64([0, 5]),
        _b64({"index": 0}),
        12345,
    ],
    ids=["not-base64", "not-json", "index-too-big", "negative-index", "string-index", "int-upstream", "object", "number"],
)
def test_malformed_cursor_is_invalid_params(multi: RawSession, cursor: Any) -> None:
    for method in ("tools/list", "prompts/list", "resources/list", "resources/templates/list"):
        answer = multi.call(method, {"cursor": cursor})
        assert answer.get("error", {}).get("code") == -32602, (method, answer)
        assert "cursor" in answer["error"]["message"]


def test_a_cursor_the_backend_refuses_is_invalid_params(multi: RawSession) -> None:
    """A well-formed gateway cursor whose upstream part the backend rejects is the client's
    error, not a sick backend: the page must not silently skip to the next namespace."""
    answer = multi.call("tools/list", {"cursor": _b64([0, "bogus"])})
    assert answer.get("error", {}).get("code") == -32602, answer


def test_single_namespace_passes_the_backends_cursors_through(stack: Stack, direct: RawSession) -> None:
    backend_walk = walk(direct, "tools/list", "tools", "name")
    for base, prefix in ((stack.single, "alpha__"), (stack.single_unprefixed, "")):
        session = open_session(base)
        try:
            through = walk(session, "tools/list", "tools", "name")
        finally:
            session.close()
        assert through.cursors == backend_walk.cursors
        assert through.pages == [[prefix + name for name in page] for page in backend_walk.pages]


def test_single_namespace_passes_the_backends_cursor_error_through(stack: Stack, direct: RawSession) -> None:
    expected = direct.call("tools/list", {"cursor": "bogus"})
    assert expected["error"]["code"] == -32602
    session = open_session(stack.single)
    try:
        answer = session.call("tools/list", {"cursor": "bogus"})
    finally:
        session.close()
    assert answer["error"] == expected["error"]
