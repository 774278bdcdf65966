"""Every PromQL expression of the dashboards and rules, and a small reader for them.

The reader is not a PromQL parser: it tokenizes an expression and finds the vector
selectors (metric name and label matchers) and the labels named in grouping clauses
(`by`, `without`, `on`, `ignoring`, `group_left`, `group_right`). That is what the tests
need to check expressions against the metric contract. Whether an expression is valid
PromQL is left to the real thing (`promtool check rules`, the Prometheus query API).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from .paths import DASHBOARD_FILES, REPO, RULE_FILES

# PromQL functions and aggregation operators (Prometheus 2.x).
AGGREGATIONS = frozenset(["sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"])
FUNCTIONS = AGGREGATIONS | frozenset(
    [
        "abs",
        "absent",
        "absent_over_time",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "avg_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "count_over_time",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "deg",
        "delta",
        "deriv",
        "exp",
        "floor",
        "histogram_count",
        "histogram_fraction",
        "histogram_quantile",
        "histogram_sum",
        "holt_winters",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "max_over_time",
        "min_over_time",
        "minute",
        "month",
        "pi",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "rad",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sin",
        "sinh",
        "sort",
        "sort_desc",
        "sqrt",
        "stddev_over_time",
        "stdvar_over_time",
        "sum_over_time",
        "tan",
        "tanh",
        "time",
        "timestamp",
        "vector",
        "year",
    ]
)
GROUPING = frozenset(["by", "without", "on", "ignoring", "group_left", "group_right"])
KEYWORDS = frozenset(["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"])

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*(?![\w:]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<lbrace>\{) | (?P<rbrace>\})
  | (?P<lparen>\() | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=@])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


@dataclass(frozen=True)
class Selector:
    """A vector selector: `name{label op "value", ...}`."""

    name: str | None
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)


@dataclass(frozen=True)
class Expression:
    """A PromQL expression and where it was found."""

    file: str  # relative to the repository
    where: str  # e.g. "row 'Traffic' panel 'Throughput' target A" or "alert MCPGatewayDown"
    kind: str  # "dashboard" | "alert" | "record"
    expr: str
    records: str = ""  # a recording rule's: the selector of the series it writes

    def __str__(self) -> str:
        return f"{self.file}: {self.where}"


class PromQLReadError(ValueError):
    """The reader could not make sense of an expression."""


def tokenize(expr: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise PromQLReadError(f"cannot read {expr[pos : pos + 20]!r} in {expr!r}")
        kind = match.lastgroup or ""
        if kind not in ("ws", "comment"):
            tokens.append(Token(kind, match.group()))
        pos = match.end()
    return tokens


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    if text.startswith("'"):
        text = '"' + text[1:-1].replace("\\'", "'").replace('"', '\\"') + '"'
    return json.loads(text)


def _read(expr: str) -> tuple[list[Selector], set[str]]:
    tokens = tokenize(expr)
    found: list[Selector] = []
    grouping: set[str] = set()
    i = 0

    def peek(j: int) -> Token | None:
        return tokens[j] if j < len(tokens) else None

    def read_matchers(j: int) -> tuple[tuple[tuple[str, str, str], ...], int]:
        # tokens[j] is "{"; returns matchers and the index after "}".
        matchers = []
        j += 1
        while tokens[j].kind != "rbrace":
            if tokens[j].kind == "comma":
                j += 1
                continue
            label, op, value = tokens[j], tokens[j + 1], tokens[j + 2]
            if label.kind != "ident" or op.kind != "op" or value.kind != "string":
                raise PromQLReadError(f"cannot read the label matchers in {expr!r}")
            matchers.append((label.text, op.text, _unquote(value.text)))
            j += 3
        return tuple(matchers), j + 1

    while i < len(tokens):
        tok = tokens[i]
        nxt = peek(i + 1)
        if tok.kind == "ident":
            word = tok.text
            if word in GROUPING:
                if nxt is not None and nxt.kind == "lparen":
                    j = i + 2
                    while tokens[j].kind != "rparen":
                        if tokens[j].kind == "ident":
                            grouping.add(tokens[j].text)
                        j += 1
                    i = j + 1
                else:
                    i += 1
                continue
            if word in KEYWORDS:
                i += 1
                continue
            if nxt is not None and nxt.kind == "lparen":
                if word not in FUNCTIONS:
                    raise PromQLReadError(f"unknown function {word!r} in {expr!r}")
                i += 1
                continue
            if word in AGGREGATIONS and nxt is not None and nxt.text in ("by", "without"):
                i += 1
                continue
            matchers: tuple[tuple[str, str, str], ...] = ()
            i += 1
            if nxt is not None and nxt.kind == "lbrace":
                matchers, i = read_matchers(i)
            found.append(Selector(word, matchers))
            continue
        if tok.kind == "lbrace":
            matchers, i = read_matchers(i)
            names = [v for (label, op, v) in matchers if label == "__name__" and op == "="]
            found.append(Selector(names[0] if names else None, matchers))
            continue
        i += 1
    return found, grouping


COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})


def comparisons_as_bool(expr: str) -> str:
    """`expr` with every comparison operator given the `bool` modifier.

    A comparison filters: `x > 0.05` keeps only the series over the threshold, so an alert that
    is not firing returns nothing. With `bool` it returns every series it compares (1 where the
    condition holds, 0 where not): what the alert watches, whether it fires or not. Matchers
    inside `{...}` are left alone, and so is a comparison that already has `bool`.
    """
    out: list[str] = []
    depth = 0
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise PromQLReadError(f"cannot read {expr[pos : pos + 20]!r} in {expr!r}")
        kind, text = match.lastgroup, match.group()
        out.append(text)
        pos = match.end()
        depth += {"lbrace": 1, "rbrace": -1}.get(kind or "", 0)
        if kind == "op" and text in COMPARISONS and depth == 0:
            following = _TOKEN.match(expr, pos)
            while following and following.lastgroup in ("ws", "comment"):
                following = _TOKEN.match(expr, following.end())
            if not (following and following.group() == "bool"):
                out.append(" bool")
    return "".join(out)


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of `expr`, in order."""
    return _read(expr)[0]


def metric_names(expr: str) -> set[str]:
    """The metric (series) names `expr` selects."""
    return {s.name for s in selectors(expr) if s.name}


def grouping_labels(expr: str) -> set[str]:
    """Labels named in `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`."""
    return _read(expr)[1]


# --- where the expressions are --------------------------------------------------------


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _panels(panels: Iterable[dict]) -> Iterator[tuple[str | None, dict]]:
    """(title of the row it is in, panel) for every panel: the panels after a row belong to it,
    and so do a collapsed row's own `panels`."""
    row = None
    for panel in panels:
        if panel.get("type") == "row":
            row = panel.get("title")
        yield row, panel
        for inner in panel.get("panels", []):
            yield row, inner


_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", re.S)


def all_values(dashboard: dict) -> dict[str, str]:
    """What Grafana puts for each query variable of `dashboard` with "All" selected (its
    `allValue`): the dashboards' expressions are checked and evaluated as they run by default."""
    return {
        var["name"]: var["allValue"]
        for var in dashboard.get("templating", {}).get("list", [])
        if var.get("type") == "query" and var.get("includeAll") and "allValue" in var
    }


def substitute(expr: str, values: dict[str, str]) -> str:
    """`expr` with the template variables in `values` (`$name` or `${name}`) replaced."""
    return _VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), expr)


def variable_selector(query: str) -> str:
    """The PromQL of a query variable: the series selector of `label_values(selector, label)`
    (Grafana's Prometheus variable query), or the query itself."""
    match = _LABEL_VALUES.match(query)
    return match.group(1).strip() if match else query


def dashboard_expressions(files: Iterable[Path] = DASHBOARD_FILES) -> list[Expression]:
    """Every target expression of every panel (and query variable) of the dashboards, with the
    template variables at their "All" value; `where` names the row too, since panels in
    different rows may share a title."""
    out: list[Expression] = []
    for path in files:
        dash = json.loads(path.read_text())
        values = all_values(dash)
        for row, panel in _panels(dash.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    where = f"panel {panel.get('title')!r} target {target.get('refId')}"
                    if row is not None and row != panel.get("title"):
                        where = f"row {row!r} {where}"
                    out.append(Expression(_rel(path), where, "dashboard", substitute(target["expr"], values)))
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                query = var.get("query")
                expr = query.get("query") if isinstance(query, dict) else query
                if expr:
                    expr = substitute(variable_selector(expr), values)
                    out.append(Expression(_rel(path), f"variable {var.get('name')!r}", "dashboard", expr))
    return out


def _rules(files: Iterable[Path]) -> Iterator[tuple[Path, dict]]:
    for path in files:
        doc = yaml.safe_load(path.read_text()) or {}
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                yield path, rule


def rule_expressions(files: Iterable[Path] = RULE_FILES) -> list[Expression]:
    """The expression of every alerting and recording rule."""
    out = []
    for path, rule in _rules(files):
        if "alert" in rule:
            out.append(Expression(_rel(path), f"alert {rule['alert']}", "alert", rule["expr"]))
        else:
            series = recorded_series(rule)
            out.append(Expression(_rel(path), f"record {series}", "record", rule["expr"], series))
    return out


def recorded_series(rule: dict) -> str:
    """The selector of what a recording rule writes: its name and the labels it adds
    (several rules may record one name, told apart by those labels)."""
    labels = ", ".join(f"{name}={json.dumps(str(value))}" for name, value in sorted((rule.get("labels") or {}).items()))
    return f"{rule['record']}{{{labels}}}" if labels else rule["record"]


def recording_rule_names(files: Iterable[Path] = RULE_FILES) -> set[str]:
    return {rule["record"] for _, rule in _rules(files) if "record" in rule}


def alert_rules(files: Iterable[Path] = RULE_FILES) -> dict[str, dict]:
    """Alerting rules by name."""
    return {rule["alert"]: rule for _, rule in _rules(files) if "alert" in rule}


def all_expressions() -> list[Expression]:
    """Every PromQL expression of the dashboards and the rules."""
    return dashboard_expressions() + rule_expressions()
