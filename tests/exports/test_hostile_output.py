"""Hostile public values (UTM parameters, form names) planted in the marts reach no one as markup:
the Slack payload received by a local webhook receiver carries them escaped and link-free, and the CSV
files read back with Python's `csv` module hold them as text, never as formulas (issue 13)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from reporting import run_export
from reporting.csv_safe import neutralise
from reporting.delivery import post_slack
from reporting.delivery_settings import DeliverySettings, SlackSettings
from reporting.safe_text import defang_urls, markdown_text, slack_link, slack_text

PERIOD_END = dt.date(2026, 11, 22)
SLACK_MARKUP = "<!channel> please <https://evil.example/login|re-verify your account>"
FORMULA_CAMPAIGN = '=HYPERLINK("http://evil.example","click")'
FORMULA_PAGE = "+cmd|' /C calc'!A0"
FORMULA_SOURCE = "@SUM(1+1)"
# What Slack treats as markup: <…> (links, mentions, channels) anywhere in a mrkdwn or text field.
SLACK_ANGLE = re.compile(r"<([^<>]*)>")


class SlackReceiver:
    """A local stand-in for the incoming webhook: answers 200 and keeps the JSON bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                receiver.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/hostiletest"

    def __enter__(self) -> SlackReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def planted_marts(fixture_marts: Path, tmp_path: Path, updates: list[tuple[str, list]]) -> Path:
    marts = tmp_path / "analyst.duckdb"
    shutil.copyfile(fixture_marts, marts)
    con = duckdb.connect(str(marts))
    try:
        for sql, params in updates:
            con.execute(sql, params)
    finally:
        con.close()
    return marts


def mrkdwn_texts(payload: dict) -> list[str]:
    """Every string Slack parses as markup: the top-level `text` and every mrkdwn text object."""
    out = [payload["text"]]

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload["blocks"])
    return out


def test_slack_markup_in_a_campaign_arrives_escaped_with_only_our_link(fixture_marts, tmp_path):
    # The top segment of the ranking is a campaign carrying an @channel ping and a disguised link.
    marts = planted_marts(
        fixture_marts,
        tmp_path,
        [
            (
                "UPDATE marts.segment_summary SET segment_dimension = 'campaign', segment_value = ? "
                "WHERE segment_value = 'Email'",
                [SLACK_MARKUP],
            )
        ],
    )
    result = run_export(marts, tmp_path / "exports", period_end=PERIOD_END, sandbox=True)
    assert any("re-verify your account" in f for f in result.headline["findings"])  # it is in a finding
    with SlackReceiver() as hook:
        settings = DeliverySettings(
            slack=SlackSettings(webhook_url=hook.url),
            attempts=1,
            backoff_seconds=0,
            report_base_url="https://reports.example.test/stepwise",
        )
        outcome = post_slack(result, settings)
    assert outcome.ok, outcome.detail
    payload = hook.bodies[0]
    texts = mrkdwn_texts(payload)
    joined = "\n".join(texts)
    # The campaign is there, readable, as escaped text …
    assert "&lt;!channel&gt; please &lt;https[:]//evil[.]example/login|re-verify your account&gt;" in joined
    # … and the only <…> markup in anything Slack parses is the report link we made.
    markup = [m.group(1) for text in texts for m in SLACK_ANGLE.finditer(text)]
    assert markup == ["https://reports.example.test/stepwise/2026-W47/summary.html|Open the full report"]
    assert "<!channel>" not in json.dumps(payload) and "evil.example" not in joined
    assert payload["unfurl_links"] is False and payload["unfurl_media"] is False


def test_slack_escaping_rules():
    assert slack_text("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert slack_text("&lt;") == "&amp;lt;"  # no double meaning: an entity in data stays literal text
    assert slack_text("<@U123> <#C123> <!here>") == "&lt;@U123&gt; &lt;#C123&gt; &lt;!here&gt;"
    assert defang_urls("see www.evil.example and evil.com/x") == "see www[.]evil[.]example and evil[.]com/x"
    assert defang_urls("1.5× as often (q = 0.003), e.g. Organic Search") == (
        "1.5× as often (q = 0.003), e.g. Organic Search"
    )
    assert (
        slack_link("https://r.example/a|b>c", "Open <it>") == "<https://r.example/a%7Cb%3Ec|Open &lt;it&gt;>"
    )
    with pytest.raises(ValueError):
        slack_link("javascript:alert(1)", "x")
    assert markdown_text("[click](https://evil.example)") == "\\[click\\]\\(https[:]//evil[.]example\\)"


def test_csv_cells_that_would_be_formulas_are_text_and_parquet_keeps_the_values(fixture_marts, tmp_path):
    marts = planted_marts(
        fixture_marts,
        tmp_path,
        [
            (
                "UPDATE marts.segment_summary SET segment_dimension = ?, segment_value = ? WHERE segment_value = ?",
                [dimension, value, old],
            )
            for dimension, value, old in (
                ("campaign", FORMULA_CAMPAIGN, "Email"),
                ("landing_page", FORMULA_PAGE, "Direct"),
                ("original_source", FORMULA_SOURCE, "Display"),
                ("campaign", "\tTAB", "Germany"),
                ("campaign", "\rCR", "mobile"),
                ("campaign", "-2+3", "desktop"),
            )
        ]
        # A negative number in a numeric column must stay a number.
        + [("UPDATE marts.segment_summary SET rate_ci_low = -0.25 WHERE segment_value = ?", ["Paid Search"])],
    )
    result = run_export(marts, tmp_path / "exports", period_end=PERIOD_END, sandbox=True)
    with (result.out_dir / "segment_summary.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_value = {r["segment_value"]: r for r in rows}
    for planted in (FORMULA_CAMPAIGN, FORMULA_PAGE, FORMULA_SOURCE, "\tTAB", "\rCR", "-2+3"):
        assert "'" + planted in by_value, planted
        assert planted not in by_value
    # No text cell anywhere in any CSV starts a formula.
    for path in result.files:
        if path.suffix != ".csv":
            continue
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                for cell in row:
                    if cell[:1] in ("=", "+", "@", "\t", "\r"):
                        pytest.fail(f"{path.name}: formula-like cell {cell!r}")
                    if cell.startswith("-"):
                        float(cell)  # a negative number, written as a number
    assert by_value["Paid Search"]["rate_ci_low"] == "-0.25"
    assert by_value["'" + FORMULA_CAMPAIGN]["lift"] == "1.8"
    # Parquet and the marts keep the values exactly.
    parquet_values = set(
        pq.read_table(result.out_dir / "segment_summary.parquet")["segment_value"].to_pylist()
    )
    assert {FORMULA_CAMPAIGN, FORMULA_PAGE, FORMULA_SOURCE, "-2+3"} <= parquet_values
    con = duckdb.connect(str(marts), read_only=True)
    try:
        stored = {r[0] for r in con.execute("SELECT segment_value FROM marts.segment_summary").fetchall()}
    finally:
        con.close()
    assert FORMULA_CAMPAIGN in stored and "'" + FORMULA_CAMPAIGN not in stored


def test_python_neutraliser_follows_the_same_rule():
    assert neutralise("=1+1") == "'=1+1" and neutralise("@x") == "'@x" and neutralise("\tx") == "'\tx"
    assert neutralise(-3) == -3 and neutralise("Organic Search") == "Organic Search"


def test_the_sandbox_hostile_values_are_neutralised_in_the_real_pipeline_export(pipeline_export):
    """Through the sandbox: the store's hostile values (CONTRACTS §5) went through GA4/HubSpot, the marts
    and the export; the CSV holds them as text, the e-mail-shaped one is redacted, nothing is markup."""
    from connectors.sandbox import store_hostile as h
    from reporting.delivery import slack_payload
    from reporting.personal_data import REDACTED

    with (pipeline_export.out_dir / "segment_summary.csv").open(newline="", encoding="utf-8") as f:
        values = {(r["segment_dimension"], r["segment_value"]) for r in csv.DictReader(f)}
    assert ("campaign", "'" + h.FORMULA_CAMPAIGN) in values and ("campaign", h.FORMULA_CAMPAIGN) not in values
    assert ("campaign", h.SLACK_CAMPAIGN) in values and ("landing_page", h.HTML_LANDING_PAGE) in values
    assert ("campaign", REDACTED) in values
    assert not any(h.EMAIL_CAMPAIGN in v for _, v in values)
    assert {
        "schema": "marts",
        "table": "segment_summary",
        "column": "segment_value",
        "values": 1,
    }.items() <= (next(r for r in pipeline_export.redactions if r["schema"] == "marts").items())
    assert any("shaped like an e-mail address" in n for n in pipeline_export.notes)
    for path in pipeline_export.files:
        if path.suffix in (".csv", ".html", ".json"):
            text = path.read_text(encoding="utf-8")
            assert h.EMAIL_CAMPAIGN not in text, path.name
            if path.suffix == ".html":  # CSV and JSON hold the values as text; HTML must not hold markup
                assert "<script>" not in text and "<!channel>" not in text, path.name
    payload = slack_payload(pipeline_export, "https://reports.example.test/2026-W47/summary.html")
    markup = [m.group(1) for text in mrkdwn_texts(payload) for m in SLACK_ANGLE.finditer(text)]
    assert markup == ["https://reports.example.test/2026-W47/summary.html|Open the full report"]
