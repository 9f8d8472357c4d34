"""The server core: routing, counters and fault injection, with a route of the test's own.

The API routes themselves are tested through the official SDKs in test_ga4_api.py and
test_hubspot_api.py; here raw HTTP is right because the subject is the transport layer.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time

import pytest

from connectors.sandbox.server import ApiResponse, FaultPlan, Route, SandboxServer


def _echo(req, ctx):
    return ApiResponse(200, {"path": req.path, "id": req.path_params["id"], "q": req.query_one("x")})


@pytest.fixture
def echo_server():
    server = SandboxServer(store=None, apis=())
    server.routes.append(Route("ga4", "GET", r"/echo/(?P<id>\d+)", _echo, name="echo"))
    server.routes.append(Route("hubspot", "GET", r"/crm/(?P<id>\d+)", _echo, name="crm"))
    with server:
        yield server


def _get(server, path):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_routes_params_and_counters(echo_server):
    status, _, body = _get(echo_server, "/echo/42?x=y")
    assert status == 200
    assert json.loads(body) == {"path": "/echo/42", "id": "42", "q": "y"}
    status, _, body = _get(echo_server, "/nowhere")
    assert status == 404
    counters = echo_server.counters()
    assert counters["ga4.requests"] == 1
    assert counters["ga4.status.200"] == 1
    assert counters["route.echo"] == 1


def test_binds_loopback_only():
    with pytest.raises(ValueError):
        SandboxServer(store=None, apis=(), host="0.0.0.0")


def test_scripted_faults_have_each_api_shape(echo_server):
    echo_server.set_faults(FaultPlan(api="ga4", sequence=["429", "429_no_retry_after", "503", "ok"]))
    status, headers, body = _get(echo_server, "/echo/1")
    assert status == 429 and headers.get("Retry-After") == "1"
    assert json.loads(body)["error"]["status"] == "RESOURCE_EXHAUSTED"
    status, headers, _ = _get(echo_server, "/echo/1")
    assert status == 429 and "Retry-After" not in headers
    status, _, body = _get(echo_server, "/echo/1")
    assert status == 503 and json.loads(body)["error"]["code"] == 503
    assert _get(echo_server, "/echo/1")[0] == 200
    # the plan is for ga4 only: hubspot routes pass
    assert _get(echo_server, "/crm/1")[0] == 200
    counters = echo_server.counters()
    assert counters["ga4.injected"] == 3
    assert counters["ga4.injected.503"] == 1


def test_auth_faults_and_malformed_and_drop(echo_server):
    echo_server.set_faults(FaultPlan(api="hubspot", sequence=["401", "403", "malformed", "drop"]))
    status, _, body = _get(echo_server, "/crm/1")
    assert status == 401 and json.loads(body)["category"] == "EXPIRED_AUTHENTICATION"
    status, _, body = _get(echo_server, "/crm/1")
    assert status == 403 and json.loads(body)["category"] == "MISSING_SCOPES"
    status, _, body = _get(echo_server, "/crm/1")
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _get(echo_server, "/crm/1")
    assert _get(echo_server, "/crm/1")[0] == 200


def test_probabilistic_faults_are_deterministic_by_seed(echo_server):
    def run():
        echo_server.set_faults(FaultPlan(api="ga4", seed=3, p_429=0.2, p_5xx=0.2))
        return [_get(echo_server, "/echo/1")[0] for _ in range(40)]

    first, second = run(), run()
    assert first == second
    assert 429 in first and any(s >= 500 for s in first) and 200 in first


def test_cli_serves_and_stops_on_sigterm():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connectors.sandbox",
            "--port",
            "0",
            "--preset",
            "demo",
            "--seed",
            "7",
            "--end-date",
            "2026-11-22",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 180
        for line in proc.stdout:
            if "sandbox serving on" in line:
                url = line.split("serving on ")[1].split()[0]
                break
            assert time.monotonic() < deadline
        assert url and url.startswith("http://127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_stop_ends_kept_alive_connections_and_their_threads():
    """An SDK keeps its HTTP connections open; stop() closes them and waits for their handler threads, so
    none is left to die inside DuckDB at interpreter exit (which aborted processes that had used the
    sandbox: "FATAL: exception not rethrown", exit 134)."""
    import threading

    def handler_threads():
        return [
            t
            for t in threading.enumerate()
            if t.is_alive() and ("process_request" in t.name or t.name == "sandbox-request")
        ]

    server = SandboxServer(store=None, apis=())
    server.routes.append(Route("ga4", "GET", r"/echo/(?P<id>\d+)", _echo, name="echo"))
    kept_alive = []
    with server:
        for i in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", f"/echo/{i}")
            assert conn.getresponse().read()  # the connection stays open (HTTP/1.1 keep-alive)
            kept_alive.append(conn)
        assert len(handler_threads()) == 3
    try:
        assert handler_threads() == []
    finally:
        for conn in kept_alive:
            conn.close()
