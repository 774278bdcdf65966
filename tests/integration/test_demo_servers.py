"""The bundled demo servers, as a user runs them: `python -m app.demo.<name> --transport …`."""

from __future__ import annotations

import sys
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.websocket import websocket_client

from app.demo.weather import forecast
from tests.support import LOOPBACK, ManagedProcess, free_port, tcp_accepts

StartDemo = Callable[[str, str], str]


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[StartDemo]:
    """`start_demo(module, transport) -> url`: a demo server process on a free port (http or ws)."""
    procs: list[ManagedProcess] = []

    def start(module: str, transport: str) -> str:
        port = free_port()
        args = [sys.executable, "-m", f"app.demo.{module}", "--transport", transport, "--port", str(port)]
        proc = ManagedProcess(args, tmp_path / f"{module}-{transport}-{port}.log").start()
        procs.append(proc)
        proc.wait_ready(lambda: tcp_accepts(LOOPBACK, port), 10, f"{module} did not listen on {port}")
        return f"{'ws' if transport == 'ws' else 'http'}://{LOOPBACK}:{port}/mcp"

    yield start
    for proc in procs:
        proc.stop()


@asynccontextmanager
async def connect(target: str) -> AsyncIterator[ClientSession]:
    """An initialized session to an http:// or ws:// URL, or to `stdio:<module>` spawned by the client."""
    if target.startswith("stdio:"):
        module = target.removeprefix("stdio:")
        streams = stdio_client(StdioServerParameters(command=sys.executable, args=["-m", f"app.demo.{module}"]))
    elif target.startswith("ws:"):
        with warnings.catch_warnings():  # deprecated by the SDK: WebSocket is not in the MCP spec
            warnings.simplefilter("ignore", DeprecationWarning)
            streams = websocket_client(target)
    else:
        streams = streamable_http_client(target)
    async with streams as (read, write, *_), ClientSession(read, write) as client:
        await client.initialize()
        yield client


def test_forecast_is_deterministic_per_city_and_day() -> None:
    monday = date(2025, 6, 2)
    assert forecast("Paris", 3, monday) == forecast("paris", 3, monday)
    assert forecast("Paris", 3, monday) != forecast("Tokyo", 3, monday)
    assert [d.date for d in forecast("Paris", 3, monday)] == ["2025-06-02", "2025-06-03", "2025-06-04"]


@pytest.mark.parametrize("transport", ["stdio", "http", "ws"])
async def test_weather_forecast_over_each_transport(start_demo: StartDemo, transport: str) -> None:
    target = "stdio:weather" if transport == "stdio" else start_demo("weather", transport)
    async with connect(target) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {"get_forecast", "get_alerts"}

        result = await client.call_tool("get_forecast", {"city": "Lisbon", "days": 2})

    assert not result.isError
    days = result.structuredContent["result"]
    assert [d["date"] for d in days] == [d.date for d in forecast("Lisbon", 2)]
    assert {"condition", "high_c", "low_c", "precipitation_mm"} <= set(days[0])


async def test_weather_rejects_out_of_range_days() -> None:
    async with connect("stdio:weather") as client:
        result = await client.call_tool("get_forecast", {"city": "Lisbon", "days": 30})
    assert result.isError


async def test_weather_resources_prompt_and_city_completion() -> None:
    async with connect("stdio:weather") as client:
        cities = await client.read_resource("weather://cities")
        paris = await client.read_resource("weather://city/Paris")
        templates = (await client.list_resource_templates()).resourceTemplates
        completion = await client.complete(
            types.ResourceTemplateReference(type="ref/resource", uri="weather://city/{name}"),
            {"name": "name", "value": "l"},
        )
        prompt = await client.get_prompt("forecast_summary", {"city": "Tokyo"})

    assert "Paris" in cities.contents[0].text
    assert forecast("Paris", 1)[0].condition in paris.contents[0].text
    assert [t.uriTemplate for t in templates] == ["weather://city/{name}"]
    assert completion.completion.values == ["Lisbon", "London"]
    assert "Tokyo" in prompt.messages[0].content.text


async def test_notes_are_kept_by_the_server_across_sessions(start_demo: StartDemo) -> None:
    url = start_demo("notes", "http")
    async with connect(url) as writer:
        added = await writer.call_tool("add_note", {"title": "todo", "body": "water plants"})
        missing = await writer.call_tool("get_note", {"title": "nope"})
    async with connect(url) as reader:
        titles = await reader.call_tool("list_notes", {})
        body = await reader.call_tool("get_note", {"title": "todo"})
        note = await reader.read_resource("notes://todo")
        summary = await reader.get_prompt("summarize_notes")

    assert not added.isError
    assert missing.isError and "nope" in missing.content[0].text
    assert titles.structuredContent == {"result": ["todo"]}
    assert body.content[0].text == "water plants"
    assert note.contents[0].text == "water plants"
    assert "water plants" in summary.messages[0].content.text
