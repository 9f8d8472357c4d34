"""Conversion anomaly alerts: which anomalies of marts.conversion_anomalies to send, the e-mail and the Slack
message for them, and their delivery through the report's channels (reporting/delivery.py).

Same rules as the weekly report: every value that comes from configuration or data is escaped for its
medium (HTML for the e-mail, Slack mrkdwn for Slack), and a message with anything that looks like an e-mail
address is refused (alerts carry aggregates only: dates, conversion names, counts and rates).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import duckdb

from reporting.delivery import DeliveryOutcome, _clip, post_slack_payload, send_email_message
from reporting.delivery_settings import DeliverySettings
from reporting.errors import PersonalDataError
from reporting.personal_data import EMAIL_PATTERN
from reporting.safe_text import slack_text

ALERT_COLUMNS = (
    "anomaly_id, date, series_type, conversion_name, funnel_name, step_index, denominator_name, observed, "
    "denominator, expected, interval_low, interval_high, observed_rate, expected_rate, z_score, kind, severity, "
    "relative_change"
)
KIND_WORDS = {"zero": "stopped (no events)", "drop": "dropped", "spike": "spiked"}


@dataclass(frozen=True)
class Alert:
    anomaly_id: str
    date: dt.date
    series_type: str
    conversion_name: str
    funnel_name: str | None
    step_index: int | None
    denominator_name: str
    observed: int
    denominator: int
    expected: float
    interval_low: float
    interval_high: float
    observed_rate: float
    expected_rate: float
    z_score: float | None
    kind: str
    severity: str
    relative_change: float | None

    @property
    def series_label(self) -> str:
        if self.series_type == "funnel_step":
            return f"{self.conversion_name} per {self.denominator_name} ({self.funnel_name} funnel, step {self.step_index})"
        return f"{self.conversion_name} per session"

    @property
    def sentence(self) -> str:
        change = "" if self.relative_change is None else f", rate {self.relative_change * 100:+.0f} %"
        return (
            f"{self.date.isoformat()} · {self.series_label} {KIND_WORDS.get(self.kind, self.kind)}: "
            f"{self.observed:,} events (expected {self.expected:,.0f}, interval {self.interval_low:,.0f}–"
            f"{self.interval_high:,.0f}{change}) · severity {self.severity}"
        )


def pending_alerts(con: duckdb.DuckDBPyConnection, lookback_days: int) -> list[Alert]:
    """Anomalies not delivered yet whose day lies within `lookback_days` of the last judged day."""
    rows = con.execute(
        f"""
        SELECT {ALERT_COLUMNS} FROM marts.conversion_anomalies
        WHERE NOT delivered
          AND date > (SELECT max(date) FROM staging.conversion_anomaly_scores) - CAST(? AS INTEGER)
        ORDER BY date, series_type, conversion_name, step_index
        """,
        [lookback_days],
    ).fetchall()
    return [Alert(*row) for row in rows]


def open_anomalies(con: duckdb.DuckDBPyConnection, open_days: int) -> list[Alert]:
    """Anomalies within `open_days` of the last judged day, delivered or not (still worth a look)."""
    rows = con.execute(
        f"""
        SELECT {ALERT_COLUMNS} FROM marts.conversion_anomalies
        WHERE date > (SELECT max(date) FROM staging.conversion_anomaly_scores) - CAST(? AS INTEGER)
        ORDER BY date, series_type, conversion_name, step_index
        """,
        [open_days],
    ).fetchall()
    return [Alert(*row) for row in rows]


def _title(alerts: list[Alert], sandbox: bool) -> str:
    days = sorted({a.date for a in alerts})
    span = days[0].isoformat() if len(days) == 1 else f"{days[0].isoformat()} to {days[-1].isoformat()}"
    return f"Stepwise: {len(alerts)} conversion anomal{'y' if len(alerts) == 1 else 'ies'} ({span})" + (
        " · sandbox data" if sandbox else ""
    )


def _refuse_personal_data(*texts: str) -> None:
    hits = [m.group(0)[:3] + "…" for text in texts for m in EMAIL_PATTERN.finditer(text)]
    if hits:
        raise PersonalDataError(
            f"refusing to send the conversion alerts: {len(hits)} e-mail-like string(s) found ({'; '.join(hits[:5])})"
        )


def build_alert_email(alerts: list[Alert], settings: DeliverySettings, sandbox: bool) -> EmailMessage:
    smtp = settings.email
    assert smtp is not None
    title = _title(alerts, sandbox)
    plain = [title, ""]
    if sandbox:
        plain += ["SANDBOX DATA: synthetic numbers from Stepwise's built-in store.", ""]
    plain += [f"- {a.sentence}" for a in alerts]
    plain += [
        "",
        "Each day is compared with the same weekday of the 8 weeks before, on the rate (per session or per "
        "previous funnel step), with an interval that allows for normal day-to-day swings. Details: "
        "marts.conversion_anomalies in the analyst file.",
    ]
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                a.date.isoformat(),
                a.series_label,
                KIND_WORDS.get(a.kind, a.kind),
                f"{a.observed:,}",
                f"{a.expected:,.0f}",
                f"{a.interval_low:,.0f}–{a.interval_high:,.0f}",
                "" if a.relative_change is None else f"{a.relative_change * 100:+.0f} %",
                a.severity,
            )
        )
        + "</tr>"
        for a in alerts
    )
    body_html = (
        f"<html><body><h2>{html.escape(title)}</h2>"
        + ("<p><strong>Sandbox data</strong>: synthetic numbers.</p>" if sandbox else "")
        + "<table border='1' cellpadding='4' cellspacing='0'><tr><th>day</th><th>series</th><th>what</th>"
        "<th>events</th><th>expected</th><th>interval</th><th>rate change</th><th>severity</th></tr>"
        + rows
        + "</table></body></html>"
    )
    _refuse_personal_data("\n".join(plain), body_html)
    msg = EmailMessage()
    msg["Subject"] = title
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(smtp.recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=smtp.sender.rsplit("@", 1)[-1])
    msg.set_content("\n".join(plain))
    msg.add_alternative(body_html, subtype="html")
    return msg


def alert_slack_payload(alerts: list[Alert], sandbox: bool) -> dict[str, Any]:
    """Slack blocks: every text from data through safe_text.slack_text (escaped, no live links or mentions),
    clipped without cutting an entity, and no link previews (the report's rules)."""
    title = _title(alerts, sandbox)
    lines = [f"• {slack_text(a.sentence)}" for a in alerts]
    payload: dict[str, Any] = {
        "text": _clip(slack_text(title), 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), 2900)}},
        ],
        "unfurl_links": False,
        "unfurl_media": False,
        "stepwise": {  # ignored by Slack; lets a receiving bot or a test read plain values
            "kind": "conversion_anomalies",
            "anomaly_ids": [a.anomaly_id for a in alerts],
            "data_source": "sandbox" if sandbox else "ga4+hubspot",
        },
    }
    _refuse_personal_data(json.dumps(payload))
    return payload


def deliver_alerts(
    alerts: list[Alert],
    settings: DeliverySettings,
    *,
    sandbox: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> list[DeliveryOutcome]:
    """Send the alerts by every configured channel (nothing to send, nothing sent)."""
    if not alerts:
        return []
    outcomes = []
    if settings.email is not None:
        outcomes.append(
            send_email_message(build_alert_email(alerts, settings, sandbox), settings, sleep=sleep)
        )
    if settings.slack is not None:
        outcomes.append(post_slack_payload(alert_slack_payload(alerts, sandbox), settings, sleep=sleep))
    return outcomes
