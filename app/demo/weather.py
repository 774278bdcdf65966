"""Demo MCP server with made-up, deterministic weather: tools, resources, a prompt, completion.

Run: `python -m app.demo.weather [--transport stdio|http|ws] [--host H] [--port N]`.
"""

from __future__ import annotations

import json
import zlib
from datetime import date, timedelta
from typing import Annotated

from mcp.server.fastmcp import FastMCP
from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)
from pydantic import BaseModel, Field

from app.demo.runner import main

CITIES = ("Amsterdam", "Berlin", "Lisbon", "London", "Madrid", "New York", "Paris", "Tokyo")
CONDITIONS = ("sunny", "partly cloudy", "cloudy", "rain", "showers", "thunderstorms", "snow", "fog")
CITY_TEMPLATE = "weather://city/{name}"
DEFAULT_PORT = 8001

mcp = FastMCP("weather", instructions="Made-up weather for demos: forecasts and alerts by city.", log_level="WARNING")


class DayForecast(BaseModel):
    date: str
    condition: str
    high_c: int
    low_c: int
    precipitation_mm: float


def _seed(*parts: object) -> int:
    """A stable number per input (unlike `hash`, the same in every process)."""
    return zlib.crc32("|".join(str(p).lower() for p in parts).encode())


def forecast(city: str, days: int, start: date | None = None) -> list[DayForecast]:
    """The same city and day always give the same weather."""
    first = start or date.today()
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        seed = _seed(city, day.isoformat())
        condition = CONDITIONS[seed % len(CONDITIONS)]
        high = 5 + seed % 25
        wet = condition in {"rain", "showers", "thunderstorms", "snow"}
        result.append(
            DayForecast(
                date=day.isoformat(),
                condition=condition,
                high_c=high,
                low_c=high - 4 - seed % 6,
                precipitation_mm=round((seed % 200) / 10, 1) if wet else 0.0,
            )
        )
    return result


@mcp.tool()
def get_forecast(city: str, days: Annotated[int, Field(ge=1, le=7, description="number of days, 1-7")] = 3) -> list[DayForecast]:
    """Daily forecast for a city, starting today."""
    return forecast(city, days)


@mcp.tool()
def get_alerts(region: str) -> str:
    """Active weather alerts for a region (often none)."""
    seed = _seed("alerts", region, date.today().isoformat())
    if seed % 3:
        return f"No active weather alerts for {region}."
    kind = ("Wind", "Flood", "Heat")[seed % 9 // 3]
    return f"{kind} advisory for {region} until 18:00 local time."


@mcp.resource("weather://cities", mime_type="application/json")
def cities() -> str:
    """The cities the demo knows by name (any other name works too)."""
    return json.dumps(list(CITIES))


@mcp.resource(CITY_TEMPLATE, mime_type="application/json")
def city_conditions(name: str) -> str:
    """Today's conditions for one city."""
    return forecast(name, 1)[0].model_dump_json()


@mcp.prompt()
def forecast_summary(city: str) -> str:
    """Ask the model for a short, friendly summary of the forecast."""
    days = "\n".join(f"- {d.date}: {d.condition}, {d.low_c}-{d.high_c} °C, {d.precipitation_mm} mm" for d in forecast(city, 3))
    return f"Summarise this 3-day forecast for {city} in two sentences for a traveller:\n{days}"


@mcp.completion()  # type: ignore[untyped-decorator, no-untyped-call]  # the SDK leaves this decorator untyped
async def complete(
    ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument, context: CompletionContext | None
) -> Completion | None:
    """Offer known city names for the city template and the summary prompt."""
    wants_city = (isinstance(ref, ResourceTemplateReference) and ref.uri == CITY_TEMPLATE) or (
        isinstance(ref, PromptReference) and ref.name == "forecast_summary"
    )
    if not wants_city:
        return None
    prefix = argument.value.lower()
    matches = [c for c in CITIES if c.lower().startswith(prefix)]
    return Completion(values=matches, total=len(matches), hasMore=False)


if __name__ == "__main__":
    main(mcp, default_port=DEFAULT_PORT)
