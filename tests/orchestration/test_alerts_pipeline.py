"""Issue 15 acceptance through the real pipeline on the sandbox: `python -m orchestration.demo` (the real
Dagster definitions, connectors over the sandbox HTTP server, SQL model, publish, alerts) over an 8-week demo
store with its planted anomalies, delivering to a real SMTP server (aiosmtpd) and a Slack receiver on loopback.

- both planted breaks (add_to_cart stops; purchase per session halves for two days) are in
  marts.conversion_anomalies on their dates, and delivered once by e-mail and by Slack;
- the traffic-surge day has no conversion alert;
- a second run (the last days again, an incremental build) delivers nothing new.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from aiosmtpd.controller import Controller

from connectors.sandbox.store_anomalies import plant_dates
from reporting.personal_data import EMAIL_PATTERN

# Two real pipeline runs over 8 weeks of 2,000 sessions a day: minutes on a quiet machine, more on a busy one.
pytestmark = pytest.mark.timeout(2400)

REPO = Path(__file__).resolve().parents[2]
END = "2026-11-22"
CREDENTIAL_VARS = ("GOOGLE_APPLICATION_CREDENTIALS", "HUBSPOT_ACCESS_TOKEN", "STEPWISE_SANDBOX_URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope.content)
        return "250 OK"


class SlackReceiver:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.bodies.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receivers():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    slack = SlackReceiver()
    try:
        yield inbox, controller.port, slack
    finally:
        slack.close()
        controller.stop()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, receivers):
    inbox, smtp_port, slack = receivers
    root = tmp_path_factory.mktemp("alerts_pipeline")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWISE_") and k not in CREDENTIAL_VARS}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "STEPWISE_WORKING_DB": str(root / "working" / "stepwise.duckdb"),
            "STEPWISE_ANALYST_DB": str(root / "analyst" / "stepwise.duckdb"),
            "STEPWISE_START_DATE": "2026-09-01",
            "STEPWISE_TIME_ZONE": "America/New_York",
            "STEPWISE_SANDBOX_PRESET": "demo",
            "STEPWISE_SANDBOX_SEED": "7",
            "STEPWISE_SANDBOX_END_DATE": END,
            "STEPWISE_SANDBOX_DAYS": "56",
            "STEPWISE_SANDBOX_SESSIONS_PER_DAY": "2000",
            "STEPWISE_SANDBOX_REVISIONS": "off",
            "STEPWISE_DUCKDB_THREADS": "2",
            "STEPWISE_DUCKDB_MEMORY_LIMIT": "1GB",
            "STEPWISE_SMTP_HOST": "127.0.0.1",
            "STEPWISE_SMTP_PORT": str(smtp_port),
            "STEPWISE_SMTP_STARTTLS": "false",
            "STEPWISE_SMTP_FROM": "stepwise@example.test",
            "STEPWISE_SMTP_TO": "growth@example.test",
            "STEPWISE_SLACK_WEBHOOK_URL": slack.url,
            "STEPWISE_DELIVERY_BACKOFF_SECONDS": "0.01",
        }
    )
    (root / "dagster_home").mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "orchestration.demo", "--no-export", *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=1500, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        return done

    run()
    first = (len(inbox.messages), len(slack.bodies))
    con = duckdb.connect(env["STEPWISE_WORKING_DB"], read_only=True)
    anomalies = con.execute(
        "SELECT anomaly_id, date, series_type, conversion_name, kind, delivered FROM marts.conversion_anomalies"
    ).fetchall()
    con.close()
    checks = _check_results(env["DAGSTER_HOME"])
    run("--days", "3")
    second = (len(inbox.messages), len(slack.bodies))
    return {"first": first, "second": second, "anomalies": anomalies, "env": env, "checks": checks}


def _check_results(dagster_home: str) -> dict[str, tuple[bool, dg.AssetCheckSeverity]]:
    keys = [
        dg.AssetCheckKey(dg.AssetKey(["marts", "conversion_anomalies"]), "no_open_anomalies"),
        dg.AssetCheckKey(dg.AssetKey(["alerts", "conversion_anomaly_alerts"]), "alert_delivery"),
    ]
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        records = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        return {
            key.name: (record.evaluation.passed, record.evaluation.severity)
            for key, record in records.items()
            if record.evaluation is not None
        }


def test_planted_breaks_are_flagged_on_their_days(pipeline):
    planted = plant_dates(dt.date.fromisoformat(END))
    rows = pipeline["anomalies"]
    zero = [r for r in rows if r[1] == planted["zero_date"] and r[3] == planted["zero_event"]]
    assert zero and {r[4] for r in zero} == {"zero"}, rows
    for day in planted["halved_dates"]:
        drops = [r for r in rows if r[1] == day and r[3] == planted["halved_event"]]
        assert drops and {r[4] for r in drops} <= {"drop", "zero"}, (day, rows)
    assert not [r for r in rows if r[1] == planted["surge_date"]], rows


def test_alerts_are_delivered_once_by_email_and_slack(pipeline, receivers):
    inbox, _, slack = receivers
    assert pipeline["first"] == (1, 1)
    # Every anomaly of the 4 judged weeks lies within the 28-day delivery lookback: all were sent.
    assert all(r[5] for r in pipeline["anomalies"])
    msg = email.message_from_bytes(inbox.messages[0], policy=email.policy.default)
    text = msg.get_body(preferencelist=("plain",)).get_content()
    planted = plant_dates(dt.date.fromisoformat(END))
    assert planted["zero_date"].isoformat() in text and "add_to_cart per session stopped" in text
    assert all(d.isoformat() in text for d in planted["halved_dates"])
    assert "SANDBOX DATA" in text
    assert not EMAIL_PATTERN.search(text) and not EMAIL_PATTERN.search(json.dumps(slack.bodies[0]))
    sent = set(slack.bodies[0]["stepwise"]["anomaly_ids"])
    assert sent == {r[0] for r in pipeline["anomalies"]}


def test_open_anomalies_warn_and_delivery_passes(pipeline):
    # The broken add_to_cart day lies within 14 days of the last judged day: the check WARNs, visible in the UI.
    assert pipeline["checks"]["no_open_anomalies"] == (False, dg.AssetCheckSeverity.WARN)
    assert pipeline["checks"]["alert_delivery"][0] is True


def test_second_run_delivers_nothing_new(pipeline):
    assert pipeline["second"] == pipeline["first"]
    con = duckdb.connect(pipeline["env"]["STEPWISE_WORKING_DB"], read_only=True)
    try:
        delivered = con.execute(
            "SELECT count(*), count(*) FILTER (delivered) FROM marts.conversion_anomalies"
        ).fetchall()[0]
        state = con.execute("SELECT count(*) FROM staging.conversion_anomaly_deliveries").fetchall()[0][0]
    finally:
        con.close()
    assert delivered[0] == delivered[1] == state == len(pipeline["anomalies"])
