"""One e-mail-shaped UTM value no longer switches the weekly export off: the value is redacted in every
output and the report's data-quality notes and the run's metadata say so; a personal-data column still
refuses the export. HTML from a landing page is text in the report and the e-mail (issue 13)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import json
import shutil
import socket
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
from aiosmtpd.controller import Controller

from orchestration.connections import Ga4Resource, HubSpotResource
from orchestration.defs.exports.assets import weekly_summary
from orchestration.warehouse import WarehouseResource
from reporting import PersonalDataError, export_columns, report, run_export
from reporting import marts as marts_module
from reporting.delivery import send_email
from reporting.delivery_settings import DeliverySettings
from reporting.personal_data import REDACTED
from transforms.model_contracts import Column

PERIOD_END = dt.date(2026, 11, 22)
EMAIL_CAMPAIGN = "x.y@example.com"
HTML_PAGE = "/search?q=<script>alert(1)</script>"


def plant(fixture_marts: Path, tmp_path: Path) -> Path:
    """The fixture marts with the top segment renamed to an e-mail-shaped campaign and another segment
    to a landing page carrying HTML (as a UTM or a crafted URL would put them there)."""
    marts = tmp_path / "analyst.duckdb"
    shutil.copyfile(fixture_marts, marts)
    con = duckdb.connect(str(marts))
    try:
        con.execute(
            "UPDATE marts.segment_summary SET segment_dimension = 'campaign', segment_value = ? "
            "WHERE segment_value = 'Email'",
            [EMAIL_CAMPAIGN],
        )
        con.execute(
            "UPDATE marts.segment_summary SET segment_dimension = 'landing_page', segment_value = ? "
            "WHERE segment_value = 'Display'",
            [HTML_PAGE],
        )
    finally:
        con.close()
    return marts


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp_inbox():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def every_text(result) -> str:
    parts = []
    for path in result.files:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            parts += [" ".join(table.column_names)]
            parts += [str(v) for c in table.columns if str(c.type) == "string" for v in c.to_pylist()]
        else:
            parts.append(path.read_text(encoding="utf-8"))
    return "\n".join(parts + [result.email_html or "", json.dumps(result.headline)])


def test_an_email_shaped_campaign_is_redacted_and_the_report_is_delivered(
    fixture_marts, tmp_path, smtp_inbox
):
    marts = plant(fixture_marts, tmp_path)
    result = run_export(marts, tmp_path / "exports", period_end=PERIOD_END, sandbox=True)
    assert result.redactions == [
        {"schema": "marts", "table": "segment_summary", "column": "segment_value", "values": 1, "rows": 1}
    ]
    texts = every_text(result)
    assert EMAIL_CAMPAIGN not in texts and "@example.com" not in texts
    assert REDACTED in (result.out_dir / "segment_summary.csv").read_text()
    assert any(REDACTED in f for f in result.headline["findings"])  # the top segment, redacted
    # The note names where and how many, never the value.
    note = next(n for n in result.notes if "shaped like an e-mail address" in n)
    assert "marts.segment_summary.segment_value (1 value, 1 row)" in note and EMAIL_CAMPAIGN not in note
    # The marts are unchanged.
    con = duckdb.connect(str(marts), read_only=True)
    try:
        assert con.execute(
            "SELECT count(*) FROM marts.segment_summary WHERE segment_value = ?", [EMAIL_CAMPAIGN]
        ).fetchall() == [(1,)]
    finally:
        con.close()

    inbox, port = smtp_inbox
    settings = DeliverySettings.from_env(
        {
            "STEPWISE_SMTP_HOST": "127.0.0.1",
            "STEPWISE_SMTP_PORT": str(port),
            "STEPWISE_SMTP_STARTTLS": "false",
            "STEPWISE_SMTP_FROM": "stepwise@example.test",
            "STEPWISE_SMTP_TO": "marketing@example.test",
        }
    )
    outcome = send_email(result, settings)
    assert outcome.ok, outcome.detail
    msg = email.message_from_bytes(inbox.messages[0], policy=email.policy.default)
    html = msg.get_body(preferencelist=("html",)).get_content()
    plain = msg.get_body(preferencelist=("plain",)).get_content()
    decoded = [part.get_payload(decode=True) for part in msg.walk() if not part.is_multipart()]
    assert not any(EMAIL_CAMPAIGN.encode() in body for body in decoded)
    assert REDACTED in plain and "shaped like an e-mail address" in html
    attached = {p.get_filename(): p.get_payload(decode=True) for p in msg.iter_attachments()}
    report_html = attached["summary.html"].decode("utf-8")
    # The landing page carrying HTML is text in the report and the e-mail, never markup.
    assert "<script>" not in report_html and "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report_html


def test_the_export_asset_reports_the_redaction_in_its_metadata(fixture_marts, tmp_path, monkeypatch):
    marts = plant(fixture_marts, tmp_path)
    monkeypatch.setenv("STEPWISE_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.delenv("STEPWISE_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("STEPWISE_SMTP_HOST", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [weekly_summary],
        partition_key="2026-11-16",
        instance=instance,
        resources={
            "warehouse": WarehouseResource(
                working_path=str(tmp_path / "working.duckdb"), analyst_path=str(marts)
            ),
            "ga4": Ga4Resource(),
            "hubspot": HubSpotResource(),
        },
    )
    assert result.success
    meta = result.asset_materializations_for_node("export__weekly_summary")[0].metadata
    assert meta["personal_data_redacted_columns"].value == 1
    assert meta["personal_data_redactions"].value == [
        {"schema": "marts", "table": "segment_summary", "column": "segment_value", "values": 1, "rows": 1}
    ]
    assert "shaped like an e-mail address" in meta["data_quality_notes"].value
    logs = "\n".join(str(r) for r in instance.all_logs(result.run_id))
    assert EMAIL_CAMPAIGN not in logs and EMAIL_CAMPAIGN not in json.dumps(
        {k: str(v.value) for k, v in meta.items()}
    )
    assert "redacted 1 e-mail-shaped value(s) in marts.segment_summary.segment_value" in logs


def test_a_personal_data_column_still_refuses_the_export(fixture_marts, tmp_path, monkeypatch):
    marts = tmp_path / "analyst.duckdb"
    shutil.copyfile(fixture_marts, marts)
    con = duckdb.connect(str(marts))
    con.execute("ALTER TABLE marts.conversions_daily ADD COLUMN contact_email VARCHAR DEFAULT 'someone'")
    con.close()
    # The model gains the column (its contract declares it, as the SQL header would)...
    contract = marts_module.MART_CONTRACTS["conversions_daily"]
    email_column = Column("contact_email", "VARCHAR", False, "A contact's e-mail address.")
    widened = dataclasses.replace(contract, columns=(*contract.columns, email_column))
    monkeypatch.setitem(marts_module.MART_CONTRACTS, "conversions_daily", widened)
    # ...and a reviewer adds it to the exported text columns by mistake: the export refuses, keeps nothing.
    reviewed = {**export_columns.TEXT_COLUMNS}
    reviewed["conversions_daily"] = (*reviewed["conversions_daily"], "contact_email")
    monkeypatch.setattr(export_columns, "TEXT_COLUMNS", reviewed)
    out_root = tmp_path / "exports"
    with pytest.raises(PersonalDataError, match="contact_email hold personal data"):
        run_export(marts, out_root, period_end=PERIOD_END, sandbox=True)
    assert not out_root.exists() or not any(out_root.iterdir())


def test_the_file_scan_is_still_the_last_line(fixture_marts, tmp_path):
    """build_summary on a connection that skipped redaction: the written-file scan refuses and keeps nothing."""
    marts = plant(fixture_marts, tmp_path)
    con = duckdb.connect(str(marts), read_only=True)
    out_root = tmp_path / "exports"
    try:
        with pytest.raises(PersonalDataError, match="e-mail-like"):
            report.build_summary(
                con, PERIOD_END - dt.timedelta(days=6), PERIOD_END, out_root / "2026-W47", sandbox=True
            )
    finally:
        con.close()
    assert not out_root.exists() or not any(out_root.iterdir())
