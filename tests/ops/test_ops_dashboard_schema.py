"""The dashboards are valid instances of Grafana's own dashboard model.

Grafana ignores keys it does not know and fills in defaults for missing ones, so a misspelt or
wrongly typed field is silently lost on import. The model is Grafana's TypeScript types
(@grafana/schema) turned into a JSON Schema once and kept in tests/fixtures/grafana/ (see its
README; scripts/gen-grafana-schema regenerates it). It catches such mistakes before an
operator does.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, ValidationError

from tests.support.ops import DASHBOARD_FILES
from tests.support.paths import FIXTURES

SCHEMA_FILE = FIXTURES / "grafana" / "dashboard.schema.json"


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    """Grafana's dashboard model. The schema is checked first, so a damaged fixture fails here, not as odd errors."""
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _leaves(error: ValidationError) -> Iterator[str]:
    """The errors under `error`, as `json.path: message` lines.

    `panels` items are `Panel | RowPanel` (an `anyOf`). Any error there makes the whole panel
    fail both branches, so go down into the branches instead. Skip a branch that rejects a
    constant on the panel itself (a timeseries panel is not a row, whose `type` is "row").
    If no branch is skipped that way, report them all.
    """
    if not error.context:
        yield f"{error.json_path}: {error.message}"
        return
    branches: defaultdict[Any, list[ValidationError]] = defaultdict(list)
    for sub in error.context:
        branches[sub.relative_schema_path[0]].append(sub)
    depth = len(error.absolute_path) + 1
    meant = [subs for subs in branches.values() if not any(s.validator == "const" and len(s.absolute_path) == depth for s in subs)]
    for subs in meant or branches.values():
        for sub in subs:
            yield from _leaves(sub)


def problems(validator: Draft7Validator, dashboard: Any) -> list[str]:
    """Every schema violation in `dashboard`, each with its JSON path."""
    return sorted(line for error in validator.iter_errors(dashboard) for line in _leaves(error))


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_dashboard_matches_grafanas_dashboard_model(validator: Draft7Validator, path: Path) -> None:
    found = problems(validator, json.loads(path.read_text()))
    assert not found, f"{path.name} does not match {SCHEMA_FILE.name}:\n" + "\n".join(found)


def _minimal() -> dict[str, Any]:
    """A small dashboard the schema accepts: a data-source variable, a row and one panel."""
    return {
        "schemaVersion": 39,
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "hide": 0}]},
        "panels": [
            {"id": 1, "type": "row", "title": "Row", "collapsed": False, "panels": [], "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}},
            {"id": 2, "type": "timeseries", "title": "Panel", "gridPos": {"h": 8, "w": 12, "x": 0, "y": 1}},
        ],
    }


def _rename(mapping: dict[str, Any], old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


# Each breaks _minimal() in one way; the schema reports exactly that, at its path.
BROKEN: dict[str, tuple[Callable[[dict[str, Any]], object], list[str]]] = {
    "panels-not-a-list": (lambda d: d.update(panels="x"), ["$.panels: 'x' is not of type 'array'"]),
    "gridPos-without-h": (
        lambda d: d["panels"][1]["gridPos"].pop("h"),
        ["$.panels[1].gridPos: 'h' is a required property"],
    ),
    "gridPos-width-a-string": (
        lambda d: d["panels"][1]["gridPos"].update(w="12"),
        ["$.panels[1].gridPos.w: '12' is not of type 'number'"],
    ),
    "misspelt-panel-key": (
        lambda d: _rename(d["panels"][1], "gridPos", "gridpos"),
        ["$.panels[1]: Additional properties are not allowed ('gridpos' was unexpected)"],
    ),
    "unknown-variable-hide": (
        lambda d: d["templating"]["list"][0].update(hide=7),
        ["$.templating.list[0].hide: 7 is not one of [0, 1, 2, 3]"],
    ),
    "no-schemaVersion": (lambda d: d.pop("schemaVersion"), ["$: 'schemaVersion' is a required property"]),
}


@pytest.mark.parametrize(("breakage", "expected"), BROKEN.values(), ids=BROKEN.keys())
def test_schema_rejects_a_broken_dashboard_and_names_the_field(
    validator: Draft7Validator, breakage: Callable[[dict[str, Any]], object], expected: list[str]
) -> None:
    dashboard = _minimal()
    assert problems(validator, dashboard) == []
    breakage(dashboard)
    assert problems(validator, dashboard) == expected
