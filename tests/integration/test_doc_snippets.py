"""Every code snippet in README.md and docs/*.md runs as written, or says why it is not run.

A Python or shell block is preceded by a marker line, `<!-- snippet: KIND -->` (invisible once
rendered), and KIND says how this file runs it:

- `sdk2`: Python with the MCP SDK 2.x (`mcp==2.3.0` in `.venv-sdk2`, `scripts/setup-env sdk2`),
  what `pip install mcp` gives today, against a real gateway running the embedded default;
- `sdk1`: Python with the SDK 1.x of the project's own environment, against the same gateway;
- `mcpb`: Python in the project's environment, against a TCP bridge in front of that gateway;
- `shell`: bash in a scratch directory holding `gateway.yaml` (the README's configuration
  example), with the project's `mcp-gateway` on the PATH;
- `not-run: REASON`: shown, not run (it needs AWS or a container engine, is this suite itself, or
  sketches an internal API that a named test runs in full).

The snippets name the quick start's addresses (http://127.0.0.1:8080, the bridge's 8445); they are
replaced by the test's. Client snippets must print the forecast they asked for. Deprecation
warnings are errors, so a snippet cannot drift onto an API on its way out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ManagedProcess, free_port, http_status
from tests.support.bridge import start_bridge, ws_url
from tests.support.paths import REPO_ROOT

REPO = REPO_ROOT
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
QUICK_START_URL = "http://127.0.0.1:8080"
QUICK_START_BRIDGE = '"127.0.0.1", 8445'
CODE_LANGUAGES = {"python", "bash", "sh", "shell", "console"}
RUN_KINDS = {"sdk2", "sdk1", "mcpb", "shell"}
CLIENT_KINDS = {"sdk2", "sdk1", "mcpb"}
MARKER = re.compile(r"^\s*<!-- snippet: (?P<kind>[a-z0-9-]+)(?::\s*(?P<reason>.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<language>[A-Za-z0-9_-]*)\s*$")
SNIPPET_TIMEOUT = 60


@dataclass(frozen=True)
class Snippet:
    where: str  # file:line of the opening fence
    language: str
    kind: str | None
    reason: str | None
    code: str


def snippets(path: Path) -> Iterator[Snippet]:
    """The fenced Python and shell blocks of one Markdown file, with the marker line before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None or not opening["language"]:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        if opening["language"] in CODE_LANGUAGES:
            marker = MARKER.match(lines[index - 1]) if index else None
            indent = len(opening["indent"])
            code = "\n".join(line[indent:] for line in lines[index + 1 : end]) + "\n"
            where = f"{path.relative_to(REPO)}:{index + 1}"
            yield Snippet(where, opening["language"], marker and marker["kind"], marker and marker["reason"], code)
        index = end + 1


ALL = [snippet for document in DOCUMENTS for snippet in snippets(document)]
RUN = [snippet for snippet in ALL if snippet.kind in RUN_KINDS]


def test_every_snippet_is_run_or_says_why_not() -> None:
    unmarked = [s.where for s in ALL if s.kind not in RUN_KINDS and not (s.kind == "not-run" and s.reason)]
    assert unmarked == [], "add `<!-- snippet: KIND -->` before these blocks (see this file's docstring)"
    assert {s.kind for s in RUN} >= CLIENT_KINDS | {"shell"}
    wrong_language = [s.where for s in RUN if (s.kind == "shell") != (s.language != "python")]
    assert wrong_language == []


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mcp-gateway serve` with no configuration (the embedded default), as the README starts it."""
    workdir = tmp_path_factory.mktemp("quick-start")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")} | {"MCP_GATEWAY_METRICS_PORT": "0"}
    args = [sys.executable, "-m", "app", "serve", "--port", str(port)]
    proc = ManagedProcess(args, workdir / "gateway.log", env=env, cwd=REPO).start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_ready(lambda: http_status(f"{url}/readyz") == 200, 20, "quick-start gateway not ready")
        yield url
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def bridge_port(quick_start: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`python -m app.tcp_bridge` in front of the quick-start gateway."""
    bridge = start_bridge(tmp_path_factory.mktemp("bridge"), ws_url(quick_start))
    try:
        yield bridge.port
    finally:
        bridge.proc.stop()


@pytest.fixture(scope="session")
def sdk2_python() -> Path:
    """`.venv-sdk2`'s interpreter, made (once, then cached) by the project's own script."""
    subprocess.run([str(REPO / "scripts" / "setup-env"), "sdk2"], cwd=REPO, check=True, timeout=600)
    return REPO / ".venv-sdk2" / "bin" / "python"


def readme_configuration() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split("## Configuration", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("snippet", RUN, ids=[s.where for s in RUN])
def test_snippet_runs(snippet: Snippet, quick_start: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    code = snippet.code.replace(QUICK_START_URL, quick_start)
    if snippet.kind == "mcpb":
        code = code.replace(QUICK_START_BRIDGE, f'"127.0.0.1", {request.getfixturevalue("bridge_port")}')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_GATEWAY_", "PYTHON"))}
    if snippet.kind == "shell":
        (tmp_path / "gateway.yaml").write_text(readme_configuration())
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        args, cwd = ["bash", "-euo", "pipefail", "-c", code], tmp_path
    else:
        python = request.getfixturevalue("sdk2_python") if snippet.kind == "sdk2" else Path(sys.executable)
        script = tmp_path / "snippet.py"
        script.write_text(code)
        args, cwd = [str(python), "-W", "error::DeprecationWarning", str(script)], tmp_path
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=SNIPPET_TIMEOUT)
    assert result.returncode == 0, f"{snippet.where} failed:\n{result.stdout}\n{result.stderr}"
    if snippet.kind in CLIENT_KINDS:
        assert '"high_c"' in result.stdout, result.stdout  # The forecast the snippet asked for.
