"""`mcp-gateway dashboards publish`: put `dashboards/*.json` into a Grafana over its HTTP API.

Made for Amazon Managed Grafana, which reads no provisioning files: Terraform outputs the
workspace URL, a service-account token and the Prometheus data source definitions; this command
creates the folder if it is missing, creates or updates the data sources, and uploads every
dashboard with `POST /api/dashboards/db` (`overwrite: true`, so a dashboard's `uid` decides what it
replaces). Works the same against any Grafana 9+.

The token travels only in the `Authorization: Bearer` header; it is never printed, logged or put
in an error message.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_FOLDER = "MCP Gateway"
TOKEN_ENV = "GRAFANA_TOKEN"
URL_ENV = "GRAFANA_URL"


class PublishError(RuntimeError):
    """Publishing stopped: a file is not a dashboard, or Grafana refused or could not be reached."""


@dataclass(frozen=True)
class Published:
    """One dashboard as Grafana stored it."""

    title: str
    uid: str
    url: str
    version: int | None


# ------------------------------------------------------------------------------ files


def load_dashboards(directory: Path) -> list[dict[str, Any]]:
    """Every `*.json` dashboard of `directory`, in name order, checked before anything is sent.

    A file holds a dashboard model (or an export wrapped as `{"dashboard": {...}}`); it needs a
    `title` and should have a stable `uid`. Its numeric `id` is dropped: ids are per Grafana
    instance, and the uid is what matches an existing dashboard.
    """
    if not directory.is_dir():
        raise PublishError(f"{directory}: not a directory of dashboards")
    files = sorted(directory.glob("*.json"))
    if not files:
        raise PublishError(f"{directory}: no *.json dashboards")
    dashboards = []
    for path in files:
        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise PublishError(f"{path}: not readable JSON ({err})") from err
        if isinstance(model, dict) and isinstance(model.get("dashboard"), dict):
            model = model["dashboard"]
        if not isinstance(model, dict) or not isinstance(model.get("title"), str) or not model["title"]:
            raise PublishError(f"{path}: not a Grafana dashboard (a JSON object with a title)")
        model = dict(model)
        model["id"] = None
        dashboards.append(model)
    uids = [str(uid) for d in dashboards if (uid := d.get("uid"))]
    duplicates = sorted({uid for uid in uids if uids.count(uid) > 1})
    if duplicates:
        raise PublishError(f"{directory}: dashboards share the uid(s) {', '.join(duplicates)}")
    return dashboards


def load_datasources(path: Path) -> list[dict[str, Any]]:
    """Data source definitions: a JSON list of Grafana data source objects, each with a uid.

    `terraform output -json grafana_datasources` writes exactly this.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PublishError(f"{path}: not readable JSON ({err})") from err
    if isinstance(data, dict) and "value" in data:  # `terraform output -json` of all outputs
        data = data["value"]
    if not isinstance(data, list) or not all(isinstance(d, dict) and d.get("uid") and d.get("type") for d in data):
        raise PublishError(f"{path}: expected a JSON list of data sources, each with a uid and a type")
    return data


# ---------------------------------------------------------------------------- Grafana


class Grafana:
    """The few Grafana HTTP API calls publishing needs, with errors that say what failed."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise PublishError(f"Grafana URL must start with http:// or https://, got {url!r}")
        if not token:
            raise PublishError(f"no Grafana token: pass --token or set {TOKEN_ENV}")
        self.url = url.rstrip("/")
        self._token = token
        self._client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Grafana:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def request(self, method: str, path: str, *, json_body: Any = None, ok: Iterable[int] = (200,)) -> httpx.Response:
        try:
            response = self._client.request(method, path, json=json_body)
        except httpx.HTTPError as err:
            raise PublishError(self._redact(f"{method} {self.url}{path}: cannot reach Grafana ({err})")) from None
        if response.status_code not in set(ok):
            raise PublishError(self._redact(f"{method} {self.url}{path}: {_describe_failure(response)}"))
        return response

    def folder_uid(self, title: str) -> str:
        """The uid of the top-level folder called `title`, created when missing."""
        for folder in self._folders():
            if folder.get("title") == title:
                return str(folder["uid"])
        uid = _slug(title)
        response = self.request("POST", "/api/folders", json_body={"uid": uid, "title": title}, ok=(200, 409, 412))
        if response.status_code == 200:
            return str(_json(response).get("uid") or uid)
        # Created meanwhile by someone else (or the uid exists with another title): look again.
        for folder in self._folders():
            if folder.get("title") == title or folder.get("uid") == uid:
                return str(folder["uid"])
        raise PublishError(f"POST {self.url}/api/folders: {_describe_failure(response)}")

    def _folders(self) -> list[dict[str, Any]]:
        folders = _json(self.request("GET", "/api/folders?limit=1000"))
        if not isinstance(folders, list):
            raise PublishError(f"GET {self.url}/api/folders: expected a JSON list")
        return folders

    def upsert_datasource(self, datasource: dict[str, Any]) -> str:
        """Create the data source, or update the one with the same uid. Returns what was done."""
        uid = datasource["uid"]
        existing = self.request("GET", f"/api/datasources/uid/{uid}", ok=(200, 404))
        if existing.status_code == 200:
            body = {**datasource, "id": _json(existing).get("id")}
            self.request("PUT", f"/api/datasources/uid/{uid}", json_body=body)
            return "updated"
        self.request("POST", "/api/datasources", json_body=datasource)
        return "created"

    def upload_dashboard(self, dashboard: dict[str, Any], folder_uid: str, message: str) -> Published:
        body = {"dashboard": dashboard, "overwrite": True, "folderUid": folder_uid, "message": message}
        answer = _json(self.request("POST", "/api/dashboards/db", json_body=body))
        return Published(
            title=dashboard["title"],
            uid=str(answer.get("uid") or dashboard.get("uid") or ""),
            url=f"{self.url}{answer.get('url', '')}",
            version=answer.get("version"),
        )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as err:
        raise PublishError(f"{response.request.method} {response.request.url}: answer is not JSON") from err


def _describe_failure(response: httpx.Response) -> str:
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            detail = str(body.get("message") or body.get("error") or "")
    except ValueError:
        detail = response.text.strip()[:200]
    hint = {
        401: " (the token is wrong or expired: create a new one, see docs/runbook.md)",
        403: " (the token's service account lacks the permission: it needs the Admin role)",
    }.get(response.status_code, "")
    reason = response.reason_phrase or ""
    return f"HTTP {response.status_code} {reason}".rstrip() + (f": {detail}" if detail else "") + hint


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "dashboards"


# ------------------------------------------------------------------------------ publish


def publish(
    grafana_url: str,
    token: str,
    directory: Path | str = "dashboards",
    folder: str = DEFAULT_FOLDER,
    *,
    datasources: Sequence[dict[str, Any]] = (),
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
    log: Callable[[str], None] = print,
) -> list[Published]:
    """Upload every dashboard of `directory` into `folder` (created if missing).

    `datasources` (Grafana data source objects with a `uid`) are created or updated first, so the
    dashboards' `datasource` variable finds them. Raises PublishError at the first failure.
    """
    dashboards = load_dashboards(Path(directory))
    with Grafana(grafana_url, token, timeout=timeout, transport=transport) as grafana:
        for datasource in datasources:
            done = grafana.upsert_datasource(datasource)
            log(f"data source {datasource.get('name', datasource['uid'])} ({datasource['uid']}): {done}")
        folder_uid = grafana.folder_uid(folder)
        published = []
        for dashboard in dashboards:
            result = grafana.upload_dashboard(dashboard, folder_uid, message="mcp-gateway dashboards publish")
            log(f"dashboard {result.title} ({result.uid}): {result.url}")
            published.append(result)
    return published


# ---------------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `dashboards publish` to the `mcp-gateway` command line."""
    parser = subparsers.add_parser(
        "dashboards",
        help="manage the Grafana dashboards",
        description="Manage the Grafana dashboards of dashboards/.",
    )
    commands = parser.add_subparsers(dest="dashboards_command", required=True, metavar="COMMAND")
    publish_parser = commands.add_parser(
        "publish",
        help="upload every dashboards/*.json to a Grafana",
        description=(
            "Upload every dashboard JSON file to a Grafana (for example Amazon Managed Grafana) through its "
            "HTTP API: the folder is created if missing, dashboards are overwritten by uid. With --datasources "
            "the Prometheus data sources Terraform describes are created or updated first."
        ),
    )
    publish_parser.add_argument(
        "--grafana-url",
        default=os.environ.get(URL_ENV),
        help=f"Grafana base URL, e.g. `terraform output -raw grafana_url` (default: ${URL_ENV})",
    )
    publish_parser.add_argument(
        "--token",
        default=None,
        help=f"service-account token (default: ${TOKEN_ENV}; prefer the variable, a command-line argument "
        "is visible to other users of the machine)",
    )
    publish_parser.add_argument("--dir", default="dashboards", type=Path, help="directory of *.json dashboards (default: dashboards)")
    publish_parser.add_argument("--folder", default=DEFAULT_FOLDER, help=f"Grafana folder title (default: {DEFAULT_FOLDER})")
    publish_parser.add_argument(
        "--datasources",
        type=Path,
        default=None,
        help="JSON list of data sources to create or update, e.g. from `terraform output -json grafana_datasources`",
    )
    publish_parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request (default: 30)")
    publish_parser.set_defaults(handler=run_publish)


def run_publish(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not args.grafana_url:
        print(f"error: no Grafana URL: pass --grafana-url or set {URL_ENV}", file=sys.stderr)
        return 2
    if not token:
        print(f"error: no Grafana token: pass --token or set {TOKEN_ENV}", file=sys.stderr)
        return 2
    try:
        datasources = load_datasources(args.datasources) if args.datasources else []
        published = publish(
            args.grafana_url,
            token,
            args.dir,
            args.folder,
            datasources=datasources,
            timeout=args.timeout,
        )
    except PublishError as err:
        print(f"error: {str(err).replace(token, '***')}", file=sys.stderr)
        return 1
    print(f"published {len(published)} dashboard(s) to {args.grafana_url.rstrip('/')} (folder {args.folder!r})")
    return 0
