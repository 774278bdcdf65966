"""Find terraform and the installed AWS provider, and run terraform in throw-away copies.

Nothing here writes into the repository: configurations are copied to a temporary directory,
and every run gets its own `TF_DATA_DIR` and an empty CLI configuration. The provider comes from
a local plugin directory (`terraform init -plugin-dir=...`), so no registry is contacted.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO_ROOT

REPO = REPO_ROOT
TERRAFORM_DIR = REPO / "infra" / "terraform"
OTEL_DIR = REPO / "otel"

# Where machines of this project keep the provider (the first one that holds it wins), after
# an explicit TF_PLUGIN_DIR.
PLUGIN_DIR_CANDIDATES = (
    Path("/opt/tf-plugins"),
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
)
# Searched (a few levels deep) when none of the candidates has the provider.
PLUGIN_SEARCH_ROOTS = (Path("/opt"), Path("/usr/local/share"), Path("/usr/share"), Path.home())


class TerraformUnavailable(RuntimeError):
    """terraform or the AWS provider is not on this machine: the tests cannot run."""


def _os_arch() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{platform.system().lower()}_{arch}"


def find_terraform() -> Path:
    """The terraform binary ($TERRAFORM, else PATH), or TerraformUnavailable with a loud message."""
    explicit = os.environ.get("TERRAFORM")
    found = explicit if explicit and Path(explicit).is_file() else shutil.which("terraform")
    if not found:
        raise TerraformUnavailable(
            "TERRAFORM IS NOT INSTALLED: the infra/terraform tests (fmt, validate, terraform test, "
            "apply/destroy against moto) cannot run and are FAILED, not skipped. Install terraform "
            ">= 1.9 on PATH (or set TERRAFORM=/path/to/terraform)."
        )
    return Path(found)


def _has_aws_provider(plugin_dir: Path) -> bool:
    pattern = f"registry.terraform.io/hashicorp/aws/*/{_os_arch()}/terraform-provider-aws*"
    return any(plugin_dir.glob(pattern))


def find_plugin_dir() -> Path:
    """A local plugin directory holding hashicorp/aws for this platform, or TerraformUnavailable."""
    explicit = os.environ.get("TF_PLUGIN_DIR")
    if explicit:
        if _has_aws_provider(Path(explicit)):
            return Path(explicit)
        raise TerraformUnavailable(f"TF_PLUGIN_DIR={explicit} holds no hashicorp/aws provider for {_os_arch()}.")
    for candidate in PLUGIN_DIR_CANDIDATES:
        if _has_aws_provider(candidate):
            return candidate
    for root in PLUGIN_SEARCH_ROOTS:
        found = _search(root, depth=8)
        if found is not None:
            return found
    raise TerraformUnavailable(
        "THE AWS PROVIDER IS NOT INSTALLED LOCALLY: no plugin directory with "
        f"registry.terraform.io/hashicorp/aws/<version>/{_os_arch()}/terraform-provider-aws_* "
        f"(looked in {', '.join(map(str, PLUGIN_DIR_CANDIDATES))} and under "
        f"{', '.join(map(str, PLUGIN_SEARCH_ROOTS))}). The tests never download it; set TF_PLUGIN_DIR."
    )


def _search(root: Path, depth: int) -> Path | None:
    """Breadth-limited walk for terraform-provider-aws*; returns the plugin directory above it."""
    if not root.is_dir():
        return None
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda _err: None):
        here = Path(dirpath)
        if len(here.parts) - base_depth >= depth:
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if not d.startswith(".") or d == ".terraform.d"]
        if here.name == _os_arch() and any(f.startswith("terraform-provider-aws") for f in filenames):
            # <plugin dir>/registry.terraform.io/hashicorp/aws/<version>/<os_arch>/
            plugin_dir = here.parents[4]
            if here.parents[3].name == "registry.terraform.io" and _has_aws_provider(plugin_dir):
                return plugin_dir
    return None


def copy_configurations(destination: Path) -> Path:
    """Copy infra/terraform (and otel/, which the roots read) to destination; return the copy of infra/terraform."""
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate", "*.tfstate.*", "__pycache__")
    target = destination / "infra" / "terraform"
    shutil.copytree(TERRAFORM_DIR, target, ignore=ignore)
    if OTEL_DIR.is_dir():
        shutil.copytree(OTEL_DIR, destination / "otel", ignore=ignore)
    return target


@dataclass
class Result:
    """One terraform command: what ran, where, how it ended and how long it took."""

    args: list[str]
    cwd: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        return (
            f"$ terraform {' '.join(self.args)}   (in {self.cwd}, exit {self.returncode}, {self.seconds:.1f}s)\n"
            f"--- stdout ---\n{self.stdout[-20000:]}\n--- stderr ---\n{self.stderr[-20000:]}"
        )


class TerraformError(AssertionError):
    """A terraform command failed; the message carries its output."""


class Terraform:
    """Runs terraform without network, writing only under `scratch`."""

    def __init__(self, binary: Path, plugin_dir: Path, scratch: Path) -> None:
        self.binary = binary
        self.plugin_dir = plugin_dir
        self.scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)
        self.cli_config = scratch / "terraformrc"
        self.cli_config.write_text("# empty: no credentials, no provider installation overrides\n")

    def environment(self, data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            # Nothing from the developer's own AWS or Terraform set-up leaks in.
            if not key.startswith(("TF_", "AWS_")) and key.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
        }
        env.update(
            TF_DATA_DIR=str(data_dir),
            TF_CLI_CONFIG_FILE=str(self.cli_config),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
            AWS_EC2_METADATA_DISABLED="true",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        env.update(extra or {})
        return env

    def run(
        self,
        args: Sequence[str],
        cwd: Path,
        data_dir: Path,
        *,
        timeout: float = 600,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        start = time.monotonic()
        try:
            proc = subprocess.run(
                [str(self.binary), *args],
                cwd=cwd,
                env=self.environment(data_dir, env),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            result = Result(list(args), cwd, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
        except subprocess.TimeoutExpired as err:
            result = Result(
                list(args),
                cwd,
                -1,
                (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or ""),
                f"timed out after {timeout}s",
                time.monotonic() - start,
            )
        if check and not result.ok:
            raise TerraformError(result.describe())
        return result

    def init(self, cwd: Path, data_dir: Path, *, backend: bool = False) -> Result:
        args = ["init", "-input=false", "-no-color", f"-plugin-dir={self.plugin_dir}"]
        if not backend:
            args.append("-backend=false")
        return self.run(args, cwd, data_dir, timeout=300)
