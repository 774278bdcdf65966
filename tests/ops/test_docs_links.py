"""The documentation stands on its own: every file, module and link it names exists, and neither
the docs nor the code send a reader to a document outside the repository.

A renamed module or a moved file leaves a doc that points nowhere; "the guide", "the brief" or
"the issue" names a text a reader of this repository does not have. Both are caught here, in a
fraction of a second, instead of by the next new maintainer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT as REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SOURCES = sorted((REPO / "app").rglob("*.py"))

# A repository path as the docs write it: from the root, in one of the checked folders.
# (Not an image name such as `otel/opentelemetry-collector-contrib:0.159.0`.)
PATH = re.compile(r"(?<![\w./-])((?:app|docs|otel|dashboards|infra|tests|bench|scripts)/[\w./*{},-]*[\w/*}])(?![\w/*{},:-]|\.\w)")
# A dotted module reference: `app.pipeline.breaker`, `app.core.protocol.check_params` (not `app.py`).
MODULE = re.compile(r"(?<![\w./-])(app(?:\.[a-z_][a-z0-9_]*)+)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# Documents a reader of this repository does not have.
OUTSIDE = re.compile(
    r"\bthe (?:guide|brief|issue)\b|\boperations guide\b|\bissue \d+\b|\.\./shared/|/work/|monitoring-guide\.md|DESIGN\.md|\bthe seed\b",
    re.IGNORECASE,
)


def lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a document outside fenced code blocks (code may show any path it likes)."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def where(path: Path, number: int) -> str:
    return f"{path.relative_to(REPO)}:{number}"


def path_exists(reference: str) -> bool:
    """A plain path, or a pattern (`tests/*.yml`, `{a,b}`) that matches at least one file."""
    reference = reference.rstrip(".,")
    if "{" in reference:
        head, _, rest = reference.partition("{")
        choices, _, tail = rest.partition("}")
        return all(path_exists(head + choice + tail) for choice in choices.split(","))
    if "*" in reference:
        return any(REPO.glob(reference))
    return (REPO / reference).exists()


def module_exists(reference: str) -> bool:
    """`app.a.b.name`: the longest prefix that is a module or package, and `name` defined in it."""
    parts = reference.split(".")
    found: Path | None = None
    index = 1
    while index < len(parts):
        base = REPO.joinpath(*parts[: index + 1])
        if (base / "__init__.py").exists():
            found, index = base / "__init__.py", index + 1
        elif base.with_suffix(".py").exists():
            found, index = base.with_suffix(".py"), index + 1
            break
        else:
            break
    if found is None:
        return False
    if index >= len(parts):
        return True
    return re.search(rf"\b{re.escape(parts[index])}\b", found.read_text(encoding="utf-8")) is not None


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for _, line in lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_path_a_doc_names_exists(document: Path) -> None:
    missing = [
        f"{where(document, number)}: {reference}"
        for number, line in lines(document)
        for reference in PATH.findall(line)
        if "…" not in reference and not path_exists(reference)
    ]
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_a_doc_names_exists(document: Path) -> None:
    missing = [
        f"{where(document, number)}: {reference}"
        for number, line in lines(document)
        for reference in MODULE.findall(line)
        if not reference.endswith(".py") and not module_exists(reference)
    ]
    assert not missing, "modules that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_finds_its_file_and_heading(document: Path) -> None:
    broken = []
    for number, line in lines(document):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:: outside by design
            file, _, anchor = target.partition("#")
            linked = (document.parent / file).resolve() if file else document
            if not linked.exists():
                broken.append(f"{where(document, number)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{where(document, number)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_nothing_points_outside_the_repository() -> None:
    found = [
        f"{where(path, number)}: {line.strip()}"
        for path in [*DOCUMENTS, *SOURCES]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert not found, "references to documents outside the repository:\n" + "\n".join(found)


def test_the_checks_see_what_they_are_meant_to() -> None:
    """The patterns themselves: a stale path, module, link and outside reference are all caught."""
    assert not PATH.findall("image `otel/opentelemetry-collector-contrib:0.159.0`")
    assert PATH.findall("see `app/transports/http.py` and docs/nothing.md.") == ["app/transports/http.py", "docs/nothing.md"]
    assert not path_exists("app/transports/http.py") and path_exists("otel/prometheus/rules/*.yml")
    assert path_exists("app/edge/http.py") and not path_exists("docs/{telemetry,nothing}.md")
    assert module_exists("app.core.protocol") and module_exists("app.config.loading.load_config")
    assert not module_exists("app.gateway") and not module_exists("app.core.protocol.no_such_name")
    assert slug("What `status` means") == "what-status-means"
    assert OUTSIDE.search("as the guide says") and OUTSIDE.search("(issue 4)")
    assert not OUTSIDE.search("a guide to the pipeline")
