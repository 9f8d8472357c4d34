"""`python -m orchestration.ui` on loopback: every asset, check and schedule through GraphQL, the
asset graph rendered by headless Chromium, and SIGTERM stopping it although SIGINT was ignored."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT_DIR = REPO / "data" / "screenshots"

ASSETS_QUERY = """
{ assetNodes { assetKey { path } groupName kinds
    assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""
SCHEDULES_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { name
    locationOrLoadError { ... on RepositoryLocation { repositories { name
        schedules { name cronSchedule executionTimezone pipelineName } } }
      ... on PythonError { message } } } } } }
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def wait_for_assets(port: int, proc: subprocess.Popen[bytes], timeout: float = 240) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, "dagster dev exited early"
        try:
            nodes = graphql(port, ASSETS_QUERY)["assetNodes"]
            if nodes:
                return nodes
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(1.0)
    raise AssertionError(f"the webserver did not serve the assets in {timeout}s: {last_error}")


@pytest.fixture
def ui_server(stepwise_env: Any, tmp_path: Path) -> Any:
    port = free_port()
    log = open(tmp_path / "dagster_dev.log", "wb")  # noqa: SIM115 - closed below
    # A non-interactive shell starts background jobs with SIGINT ignored; the UI must still stop on SIGTERM.
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestration.ui", "--port", str(port)],
        cwd=REPO,
        env=stepwise_env.subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # noqa: PLW1509
    )
    try:
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def test_ui_lists_everything_renders_the_graph_and_stops_on_sigterm(
    ui_server: Any, defs: Any, tmp_path: Path
) -> None:
    port, proc = ui_server
    nodes = wait_for_assets(port, proc)
    served = {"/".join(n["assetKey"]["path"]) for n in nodes}
    graph = defs.resolve_asset_graph()
    expected = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    assert expected <= served, sorted(expected - served)
    served_checks = {
        ("/".join(n["assetKey"]["path"]), c["name"])
        for n in nodes
        for c in (n.get("assetChecksOrError") or {}).get("checks", [])
    }
    expected_checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert expected_checks <= served_checks, sorted(expected_checks - served_checks)
    groups = {n["groupName"] for n in nodes}
    assert {"ingest", "staging", "marts", "publish"} <= groups

    locations = graph_locations = graphql(port, SCHEDULES_QUERY)["workspaceOrError"]["locationEntries"]
    schedules = {
        s["name"]: s
        for entry in graph_locations
        for repo in (entry["locationOrLoadError"] or {}).get("repositories", [])
        for s in repo["schedules"]
    }
    assert [e["name"] for e in locations] == ["stepwise"]
    assert schedules["stepwise_daily_schedule"]["cronSchedule"] == "0 6 * * *"
    assert schedules["stepwise_daily_schedule"]["pipelineName"] == "stepwise_daily"

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed for this test (make system-deps installs it)")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    # The global lineage (groups ingest -> staging -> marts -> publish -> export) and the marts
    # group's table-level graph with its checks.
    for name, path in (
        ("asset_graph.png", "asset-groups"),
        ("asset_graph_marts.png", "locations/stepwise/asset-groups/marts"),
    ):
        shot = SCREENSHOT_DIR / name
        shot.unlink(missing_ok=True)
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / ('chromium-' + name)}",
                f"--screenshot={shot}",
                "--window-size=1600,1000",
                "--virtual-time-budget=25000",
                f"http://127.0.0.1:{port}/{path}",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        assert shot.exists() and shot.stat().st_size > 30_000, f"{name} is missing or blank"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) is not None
