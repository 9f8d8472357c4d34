"""Slack delivery against a local HTTP receiver standing in for the incoming webhook, directly and
through the real Dagster export asset and its `delivery` check."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from orchestration.connections import SandboxGa4Resource, SandboxHubSpotResource
from orchestration.defs.exports.assets import (
    EXPORT_KEY,
    export_cron,
    weekly_summary,
    weekly_summary_schedule,
)
from orchestration.settings import StepwiseConfigError
from orchestration.warehouse import WarehouseResource
from reporting.delivery import post_slack
from reporting.delivery_settings import DeliverySettings, SlackSettings
from reporting.marts import MARTS

HOOK_PATH = "/services/T000TEST/B000TEST/abcdefSECRETwebhookpath"


class Receiver:
    """Answers each POST with the next status of `script` (the last one repeats) and keeps the bodies."""

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.paths.append(self.path)
                receiver.bodies.append(json.loads(body))
                status = receiver.script.pop(0) if len(receiver.script) > 1 else receiver.script[0]
                reply = b"ok" if status == 200 else b"internal_error"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{HOOK_PATH}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def slack_settings(url: str) -> DeliverySettings:
    return DeliverySettings(slack=SlackSettings(webhook_url=url), attempts=3, backoff_seconds=0.01)


def test_payload_carries_headline_numbers_and_where_the_report_is(fixture_export):
    with Receiver([200]) as hook:
        outcome = post_slack(fixture_export, slack_settings(hook.url))
    assert outcome.ok and outcome.attempts == 1
    assert hook.paths == [HOOK_PATH]
    payload = hook.bodies[0]
    h = fixture_export.headline
    assert "2026-W47" in payload["text"]
    assert f"{h['macro_conversions']:,.0f}" in payload["text"]
    header = payload["blocks"][0]["text"]["text"]
    assert "16–22 Nov 2026" in header and "sandbox data" in header
    fields = "\n".join(f["text"] for f in payload["blocks"][1]["fields"])
    for key in ("sessions", "micro_conversions", "macro_conversions"):
        assert f"{h[key]:,.0f}" in fields
        assert payload["stepwise"]["headline"][key] == h[key]
    report = os.path.abspath(fixture_export.report_path)
    assert payload["stepwise"]["report"] == report
    assert report in payload["blocks"][-1]["elements"][0]["text"]
    assert "Email visitors convert" in json.dumps(payload, ensure_ascii=False)


def test_report_link_uses_the_base_url_when_set(fixture_export):
    settings = DeliverySettings(
        slack=SlackSettings(webhook_url="http://127.0.0.1:1/x"),
        report_base_url="https://reports.example.test/stepwise",
    )
    assert (
        settings.report_location(fixture_export)
        == "https://reports.example.test/stepwise/2026-W47/summary.html"
    )


def test_failing_twice_then_succeeding_is_retried(fixture_export):
    with Receiver([500, 503, 200]) as hook:
        outcome = post_slack(fixture_export, slack_settings(hook.url))
    assert outcome.ok and outcome.attempts == 3
    assert len(hook.bodies) == 3 and hook.bodies[0] == hook.bodies[2]


def test_a_client_error_is_not_retried(fixture_export):
    with Receiver([404]) as hook:
        outcome = post_slack(fixture_export, slack_settings(hook.url))
    assert not outcome.ok and outcome.attempts == 1 and len(hook.bodies) == 1
    assert "HTTP 404" in outcome.detail and "SECRET" not in outcome.detail


# --- through Dagster: the export asset and its delivery check ------------------------------------


def materialize_export(analyst_file, tmp_path, monkeypatch, env: dict[str, str]):
    monkeypatch.setenv("STEPWISE_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("STEPWISE_DELIVERY_BACKOFF_SECONDS", "0.01")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [weekly_summary],
        partition_key="2026-11-16",
        instance=instance,
        resources={
            "warehouse": WarehouseResource(
                working_path=str(tmp_path / "working.duckdb"), analyst_path=str(analyst_file)
            ),
            "ga4": SandboxGa4Resource(),
            "hubspot": SandboxHubSpotResource(),
        },
        raise_on_error=False,
    )
    return result, instance


def check_result(result) -> dg.AssetCheckEvaluation:
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 1 and evaluations[0].check_name == "delivery"
    return evaluations[0]


def all_event_text(instance, run_id: str) -> str:
    return "\n".join(str(record) for record in instance.all_logs(run_id))


def test_asset_writes_the_week_and_passes_delivery_when_slack_answers(fixture_marts, tmp_path, monkeypatch):
    with Receiver([500, 200]) as hook:
        result, instance = materialize_export(
            fixture_marts, tmp_path, monkeypatch, {"STEPWISE_SLACK_WEBHOOK_URL": hook.url}
        )
    assert result.success
    check = check_result(result)
    assert check.passed and len(hook.bodies) == 2
    meta = result.asset_materializations_for_node("export__weekly_summary")[0].metadata
    assert meta["period"].value == "2026-W47" and meta["data_source"].value == "sandbox"
    assert (
        meta["headline_macro_conversions"].value
        == hook.bodies[-1]["stepwise"]["headline"]["macro_conversions"]
    )
    out_dir = tmp_path / "exports" / "2026-W47"
    assert meta["export_dir"].value == os.path.abspath(out_dir)
    assert (out_dir / "summary.html").is_file() and (out_dir / "segment_summary.parquet").is_file()
    text = all_event_text(instance, result.run_id)
    assert "SECRETwebhookpath" not in text and "SECRETwebhookpath" not in json.dumps(
        {k: str(v.value) for k, v in meta.items()}
    )


def test_always_failing_slack_fails_the_check_and_keeps_the_files(fixture_marts, tmp_path, monkeypatch):
    with Receiver([500]) as hook:
        result, instance = materialize_export(
            fixture_marts, tmp_path, monkeypatch, {"STEPWISE_SLACK_WEBHOOK_URL": hook.url}
        )
    assert result.success  # the export itself succeeded; the delivery check carries the failure
    check = check_result(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["failed"].value == "slack"
    assert len(hook.bodies) == 3
    files = sorted(p.name for p in (tmp_path / "exports" / "2026-W47").iterdir())
    # summary.html, manifest.json and a CSV and a Parquet file per mart
    assert "summary.html" in files and "funnel_daily.csv" in files and len(files) == 2 * len(MARTS) + 2
    assert "SECRETwebhookpath" not in all_event_text(instance, result.run_id)


def test_no_delivery_configured_passes_the_check(fixture_marts, tmp_path, monkeypatch):
    monkeypatch.delenv("STEPWISE_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("STEPWISE_SMTP_HOST", raising=False)
    result, _ = materialize_export(fixture_marts, tmp_path, monkeypatch, {})
    assert result.success and check_result(result).passed
    assert check_result(result).metadata["configured"].value == "none"


def test_bad_delivery_setting_fails_before_anything_is_written(fixture_marts, tmp_path, monkeypatch):
    result, _ = materialize_export(
        fixture_marts,
        tmp_path,
        monkeypatch,
        {"STEPWISE_SMTP_HOST": "mail.example.test", "STEPWISE_SMTP_TO": ""},
    )
    assert not result.success
    assert not (tmp_path / "exports").exists()


def test_schedule_requests_the_last_complete_week():
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 11, 23, 7, 0, tzinfo=dt.UTC)
    )
    request = weekly_summary_schedule(context)
    assert isinstance(request, dg.RunRequest) and request.partition_key == "2026-11-16"
    assert weekly_summary_schedule.cron_schedule == "0 7 * * 1"


def test_export_cron_is_configurable_and_validated(monkeypatch):
    monkeypatch.setenv("STEPWISE_EXPORT_CRON", "30 8 * * 2")
    assert export_cron() == "30 8 * * 2"
    monkeypatch.setenv("STEPWISE_EXPORT_CRON", "every monday")
    with pytest.raises(StepwiseConfigError, match="STEPWISE_EXPORT_CRON"):
        export_cron()


def test_export_asset_is_in_the_code_location():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    node = graph.get(EXPORT_KEY)
    assert node.group_name == "export"
    assert {"html", "csv", "parquet"} <= set(node.kinds)
    assert any(k.to_user_string().startswith("publish") for k in node.parent_keys)
    assert "weekly_summary_export_schedule" in {s.name for s in defs.schedules}
    assert {k.name for k in graph.asset_check_keys if k.asset_key == EXPORT_KEY} == {"delivery"}


def test_asset_over_the_real_pipeline_marts(pipeline_marts, pipeline_export, tmp_path, monkeypatch):
    monkeypatch.delenv("STEPWISE_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("STEPWISE_SMTP_HOST", raising=False)
    result, _ = materialize_export(pipeline_marts.path, tmp_path, monkeypatch, {})
    assert result.success and check_result(result).passed
    meta = result.asset_materializations_for_node("export__weekly_summary")[0].metadata
    assert meta["data_source"].value == "sandbox" and meta["file_count"].value == 2 * len(MARTS) + 2
    for key in ("sessions", "micro_conversions", "macro_conversions"):
        assert meta[f"headline_{key}"].value == pipeline_export.headline[key]
    assert "| Sessions |" in meta["headline"].value
