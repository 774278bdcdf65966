"""The package's metadata, as an installer builds it: no deprecation warning on every install.

`pip` builds the metadata the way every install does (an isolated build environment with the
`[build-system]` requirements, then the backend's `prepare_metadata_for_build_wheel`), from a
copy of the sources so nothing is written into the repository.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.paths import REPO_ROOT

REPO = REPO_ROOT
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_license_is_an_spdx_expression() -> None:
    """A `{text = ...}` table is deprecated by setuptools (PEP 639), and so are license classifiers."""
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert not [c for c in PYPROJECT["project"].get("classifiers", []) if c.startswith("License ::")]


def test_the_metadata_builds_without_a_warning(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__"))
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--ignore-installed",
            "--report",
            str(report),
            "-v",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    backend_warnings = [line for line in output.splitlines() if "Warning" in line]  # BuildBackendWarning, SetuptoolsDeprecationWarning, ...
    assert not backend_warnings, "\n".join(backend_warnings)
    [package] = json.loads(report.read_text())["install"]
    assert package["metadata"]["name"] == "mcp-gateway"
    assert package["metadata"]["license_expression"] == "Apache-2.0"
