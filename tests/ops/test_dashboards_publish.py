"""`mcp-gateway dashboards publish` (app/ops/dashboards.py) against a local HTTP server.

No Grafana server can be installed on these machines, so the server here stands in for one: it
answers the few Grafana HTTP API calls publishing makes (folders, data sources,
`POST /api/dashboards/db`) the way Grafana documents them, records every call, and refuses
calls without the expected `Authorization: Bearer` token. The tests check the calls the
publisher makes, their bodies (decoded JSON), the errors it reports, and that the token never
appears in its output. Dashboards are temporary JSON files (the real ones live in dashboards/).
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.ops import PublishError, publish, register
from tests.support.paths import REPO_ROOT

TOKEN = "glsa_TestServiceAccountToken_c0ffee"


@dataclass
class Call:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class FakeGrafana:
    """State of the stand-in Grafana: folders, data sources, dashboards, and every call."""

    folders: list[dict[str, Any]] = field(default_factory=list)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    fail: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    url: str = ""

    def paths(self) -> list[str]:
        return [f"{c.method} {c.path}" for c in self.calls]


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        state = self.server.state
        state.calls.append(Call(method, self.path, self.headers.get("Authorization"), body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"message": "invalid API key"})
        route = self.path.split("?")[0]
        if (method, route) in state.fail:
            status, answer = state.fail[(method, route)]
            return self._reply(status, answer)

        if method == "GET" and route == "/api/folders":
            return self._reply(200, state.folders)
        if method == "POST" and route == "/api/folders":
            if any(f["title"] == body["title"] for f in state.folders):
                return self._reply(409, {"message": "a folder with the same name already exists"})
            folder = {"id": len(state.folders) + 1, "uid": body.get("uid") or "generated", "title": body["title"]}
            state.folders.append(folder)
            return self._reply(200, folder)
        if route.startswith("/api/datasources/uid/"):
            uid = route.rsplit("/", 1)[1]
            if method == "GET":
                if uid in state.datasources:
                    return self._reply(200, state.datasources[uid])
                return self._reply(404, {"message": "Data source not found"})
            if method == "PUT" and uid in state.datasources:
                state.datasources[uid] = body
                return self._reply(200, {"message": "Datasource updated", "id": body.get("id")})
        if method == "POST" and route == "/api/datasources":
            if body["uid"] in state.datasources:
                return self._reply(409, {"message": "data source with the same uid already exists"})
            state.datasources[body["uid"]] = {**body, "id": len(state.datasources) + 1}
            return self._reply(200, {"message": "Datasource added", "id": len(state.datasources)})
        if method == "POST" and route == "/api/dashboards/db":
            dashboard = body["dashboard"]
            if not body.get("overwrite") and dashboard["uid"] in state.dashboards:
                return self._reply(412, {"status": "name-exists", "message": "dashboard exists"})
            version = state.dashboards.get(dashboard["uid"], {}).get("version", 0) + 1
            state.dashboards[dashboard["uid"]] = {"body": body, "version": version}
            return self._reply(
                200,
                {"id": 1, "uid": dashboard["uid"], "status": "success", "version": version, "url": f"/d/{dashboard['uid']}/x"},
            )
        return self._reply(404, {"message": "Not found"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = FakeGrafana(url=f"http://127.0.0.1:{self.server_address[1]}")


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = Server()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.state
    server.shutdown()
    server.server_close()


def _dashboard(uid: str, title: str) -> dict[str, Any]:
    return {
        "id": 42,
        "uid": uid,
        "title": title,
        "schemaVersion": 39,
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
        "panels": [{"type": "timeseries", "title": "Request Rate", "datasource": {"uid": "${datasource}"}}],
    }


@pytest.fixture
def dashboards_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "dashboards"
    directory.mkdir()
    (directory / "b-gateway.json").write_text(json.dumps(_dashboard("mcp-gateway", "MCP Gateway")))
    (directory / "a-router.json").write_text(json.dumps(_dashboard("mcp-router", "MCP Router Overview")))
    (directory / "notes.txt").write_text("not a dashboard")
    return directory


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mcp-gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


# ------------------------------------------------------------------------------- tests


def test_publish_creates_the_folder_and_uploads_every_dashboard(grafana: FakeGrafana, dashboards_dir: Path) -> None:
    lines: list[str] = []
    published = publish(grafana.url, TOKEN, dashboards_dir, "MCP", log=lines.append)

    assert grafana.paths() == [
        "GET /api/folders?limit=1000",
        "POST /api/folders",
        "POST /api/dashboards/db",
        "POST /api/dashboards/db",
    ]
    assert all(c.authorization == f"Bearer {TOKEN}" for c in grafana.calls)
    assert grafana.calls[1].body == {"uid": "mcp", "title": "MCP"}

    uploads = [c.body for c in grafana.calls if c.path == "/api/dashboards/db"]
    expected_router = {**_dashboard("mcp-router", "MCP Router Overview"), "id": None}
    expected_gateway = {**_dashboard("mcp-gateway", "MCP Gateway"), "id": None}
    assert uploads == [
        {"dashboard": expected_router, "overwrite": True, "folderUid": "mcp", "message": "mcp-gateway dashboards publish"},
        {"dashboard": expected_gateway, "overwrite": True, "folderUid": "mcp", "message": "mcp-gateway dashboards publish"},
    ]
    assert [(p.uid, p.title, p.version) for p in published] == [
        ("mcp-router", "MCP Router Overview", 1),
        ("mcp-gateway", "MCP Gateway", 1),
    ]
    assert published[0].url == f"{grafana.url}/d/mcp-router/x"
    assert not any(TOKEN in line for line in lines)


def test_an_existing_folder_is_reused_and_dashboards_are_overwritten(grafana: FakeGrafana, dashboards_dir: Path) -> None:
    grafana.folders.append({"id": 7, "uid": "ops-folder", "title": "MCP Gateway"})
    publish(grafana.url, TOKEN, dashboards_dir, log=lambda _line: None)
    published = publish(grafana.url, TOKEN, dashboards_dir, log=lambda _line: None)

    assert "POST /api/folders" not in grafana.paths()
    assert {c.body["folderUid"] for c in grafana.calls if c.path == "/api/dashboards/db"} == {"ops-folder"}
    assert [p.version for p in published] == [2, 2]


def test_datasources_are_created_then_updated_by_uid(grafana: FakeGrafana, dashboards_dir: Path) -> None:
    datasource = {
        "uid": "mcp-prometheus-region",
        "name": "MCP Prometheus (region)",
        "type": "prometheus",
        "access": "proxy",
        "url": "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1/",
        "isDefault": True,
        "jsonData": {"httpMethod": "POST", "sigV4Auth": True, "sigV4AuthType": "ec2_iam_role", "sigV4Region": "us-east-1"},
    }
    publish(grafana.url, TOKEN, dashboards_dir, datasources=[datasource], log=lambda _line: None)
    assert grafana.paths()[:2] == ["GET /api/datasources/uid/mcp-prometheus-region", "POST /api/datasources"]
    assert grafana.calls[1].body == datasource

    grafana.calls.clear()
    changed = {**datasource, "url": "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-2/"}
    publish(grafana.url, TOKEN, dashboards_dir, datasources=[changed], log=lambda _line: None)
    assert grafana.paths()[:2] == ["GET /api/datasources/uid/mcp-prometheus-region", "PUT /api/datasources/uid/mcp-prometheus-region"]
    assert grafana.calls[1].body == {**changed, "id": 1}


def test_http_failures_are_clear_and_never_show_the_token(grafana: FakeGrafana, dashboards_dir: Path) -> None:
    grafana.fail[("POST", "/api/dashboards/db")] = (500, {"message": f"database is locked (token {TOKEN})"})
    with pytest.raises(PublishError) as failure:
        publish(grafana.url, TOKEN, dashboards_dir, log=lambda _line: None)
    message = str(failure.value)
    assert f"POST {grafana.url}/api/dashboards/db: HTTP 500" in message
    assert "database is locked" in message
    assert TOKEN not in message


def test_a_wrong_token_says_so(grafana: FakeGrafana, dashboards_dir: Path) -> None:
    with pytest.raises(PublishError, match=r"HTTP 401 Unauthorized: invalid API key \(the token is wrong or expired"):
        publish(grafana.url, "glsa_wrong", dashboards_dir, log=lambda _line: None)
    assert grafana.paths() == ["GET /api/folders?limit=1000"]


def test_an_unreachable_grafana_says_so(dashboards_dir: Path) -> None:
    server = Server()  # bound, then closed: nothing listens on the port any more
    url = server.state.url
    server.server_close()
    with pytest.raises(PublishError, match="cannot reach Grafana"):
        publish(url, TOKEN, dashboards_dir, log=lambda _line: None)


def test_files_are_checked_before_anything_is_sent(grafana: FakeGrafana, tmp_path: Path) -> None:
    directory = tmp_path / "broken"
    directory.mkdir()
    (directory / "a.json").write_text(json.dumps(_dashboard("mcp-a", "A")))
    (directory / "b.json").write_text("{not json")
    with pytest.raises(PublishError, match=r"b\.json: not readable JSON"):
        publish(grafana.url, TOKEN, directory, log=lambda _line: None)
    (directory / "b.json").write_text(json.dumps({"panels": []}))
    with pytest.raises(PublishError, match=r"b\.json: not a Grafana dashboard"):
        publish(grafana.url, TOKEN, directory, log=lambda _line: None)
    (directory / "b.json").write_text(json.dumps(_dashboard("mcp-a", "B")))
    with pytest.raises(PublishError, match="share the uid"):
        publish(grafana.url, TOKEN, directory, log=lambda _line: None)
    assert grafana.calls == []


def test_cli_reads_the_token_from_the_environment(
    grafana: FakeGrafana, dashboards_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    status = _cli(["dashboards", "publish", "--grafana-url", grafana.url, "--dir", str(dashboards_dir), "--folder", "MCP"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "published 2 dashboard(s)" in out
    assert TOKEN not in out + err
    assert len([c for c in grafana.calls if c.path == "/api/dashboards/db"]) == 2


def test_cli_with_datasources_from_terraform_output(
    grafana: FakeGrafana, dashboards_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    datasources = tmp_path / "datasources.json"
    datasources.write_text(json.dumps([{"uid": "mcp-prometheus-global", "name": "g", "type": "prometheus", "url": "https://x/"}]))
    status = _cli(["dashboards", "publish", "--grafana-url", grafana.url, "--dir", str(dashboards_dir), "--datasources", str(datasources)])
    assert status == 0
    assert "mcp-prometheus-global" in grafana.datasources


def test_cli_failure_exits_1_without_the_token(grafana: FakeGrafana, dashboards_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grafana.fail[("GET", "/api/folders")] = (403, {"message": f"Access denied to {TOKEN}"})
    status = _cli(["dashboards", "publish", "--grafana-url", grafana.url, "--token", TOKEN, "--dir", str(dashboards_dir)])
    out, err = capsys.readouterr()
    assert status == 1
    assert "HTTP 403" in err and "Admin role" in err
    assert TOKEN not in out + err


def test_cli_without_a_token_exits_2(dashboards_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert _cli(["dashboards", "publish", "--grafana-url", "http://127.0.0.1:9", "--dir", str(dashboards_dir)]) == 2
    assert "GRAFANA_TOKEN" in capsys.readouterr().err


def test_the_repository_dashboards_load() -> None:
    """The real dashboards/ pass the publisher's checks (titles, unique uids)."""
    directory = REPO_ROOT / "dashboards"
    if not list(directory.glob("*.json")):
        pytest.fail("dashboards/*.json is empty")
    from app.ops import load_dashboards

    assert all(d.get("uid") for d in load_dashboards(directory))
