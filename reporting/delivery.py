"""Delivery of a written export: e-mail over SMTP and a Slack incoming webhook, each optional.

Settings are passed in (reporting/delivery_settings.py, built once by orchestration/settings.py). Each channel is tried a few times with exponential backoff;
a channel that still fails gives a failed `DeliveryOutcome` (the export files stay where they are).
Passwords and the webhook URL (which is itself a credential) never appear in outcomes or logs.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import urlsplit

from reporting.delivery_settings import DeliveryConfigError, DeliverySettings, SmtpSettings
from reporting.report import ExportResult
from reporting.safe_text import slack_escape, slack_link, slack_text

log = logging.getLogger("stepwise.exports.delivery")

CONTENT_TYPES = {
    ".csv": ("text", "csv"),
    ".parquet": ("application", "vnd.apache.parquet"),
    ".html": ("text", "html"),
    ".json": ("application", "json"),
}


@dataclass
class DeliveryOutcome:
    channel: str
    ok: bool
    attempts: int
    target: str
    detail: str

    def as_metadata(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "ok": self.ok,
            "attempts": self.attempts,
            "target": self.target,
            "detail": self.detail,
        }


class _Permanent(Exception):
    """A failure that another attempt would not fix (bad login, refused recipient, 4xx from Slack)."""


class _Transient(Exception):
    """A failure worth another attempt (5xx, 429, timeouts, refused connections), already described."""


def _redact(text: str, secrets: list[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _with_retries(
    channel: str,
    target: str,
    action: Callable[[], str],
    settings: DeliverySettings,
    secrets: list[str | None],
    sleep: Callable[[float], None],
) -> DeliveryOutcome:
    last = ""
    for attempt in range(1, settings.attempts + 1):
        try:
            detail = action()
            log.info("delivered the export by %s (%s) on attempt %d", channel, target, attempt)
            return DeliveryOutcome(channel, True, attempt, target, detail)
        except _Permanent as exc:
            last = _redact(str(exc), secrets)
            log.warning("%s delivery failed permanently on attempt %d: %s", channel, attempt, last)
            return DeliveryOutcome(channel, False, attempt, target, f"failed, not retried: {last}")
        except Exception as exc:  # noqa: BLE001 - any transport error is retried, then reported
            text = str(exc) if isinstance(exc, _Transient) else f"{type(exc).__name__}: {exc}"
            last = _redact(text, secrets)
            log.warning("%s delivery attempt %d/%d failed: %s", channel, attempt, settings.attempts, last)
            if attempt < settings.attempts:
                sleep(settings.backoff_seconds * 2 ** (attempt - 1))
    return DeliveryOutcome(
        channel, False, settings.attempts, target, f"failed after {settings.attempts} attempts: {last}"
    )


# --- e-mail --------------------------------------------------------------------------------------


def _pct(change: float | None) -> str:
    if change is None:
        return "new"
    arrow = "▲" if change > 0.0005 else "▼" if change < -0.0005 else "●"
    return f"{arrow} {abs(change) * 100:.1f} %"


HEADLINE_FIELDS = (
    ("sessions", "Sessions", "{:,.0f}"),
    ("micro_conversions", "Micro conversions", "{:,.0f}"),
    ("macro_conversions", "Macro conversions", "{:,.0f}"),
    ("web_macro_rate", "Web macro conversion rate", "{:.4f}"),
    ("macro_value", "Macro conversion value", "${:,.0f}"),
)


def headline_lines(result: ExportResult) -> list[tuple[str, str, str]]:
    out = []
    for key, label, fmt in HEADLINE_FIELDS:
        if key in result.headline and result.headline[key] is not None:
            value = result.headline[key]
            shown = f"{value * 100:.2f} %" if key.endswith("_rate") else fmt.format(value)
            out.append((label, shown, _pct(result.headline.get(f"{key}_change"))))
    return out


def subject_line(result: ExportResult) -> str:
    tag = " [sandbox data]" if result.sandbox else ""
    return f"Stepwise conversion summary {result.period_label} ({result.period.title}){tag}"


def build_email(result: ExportResult, smtp: SmtpSettings, report_location: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject_line(result)
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(smtp.recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=smtp.sender.rsplit("@", 1)[-1])
    plain = [f"Conversion summary {result.period_label}, {result.period.title}", ""]
    if result.sandbox:
        plain += ["SANDBOX DATA: synthetic numbers from Stepwise's built-in store.", ""]
    plain += [
        f"{label}: {value} ({change} on the previous period)"
        for label, value, change in headline_lines(result)
    ]
    plain += ["", *[f"- {f}" for f in result.headline.get("findings", [])], ""]
    # Most mail systems refuse messages over 20-25 MB: attach the report first, then the smallest files,
    # and name what did not fit (it stays in the export directory).
    attached, left_out, budget = [], [], smtp.max_attachment_bytes
    for path in sorted(result.files, key=lambda p: (p.name != "summary.html", p.stat().st_size, p.name)):
        size = path.stat().st_size
        if size <= budget:
            attached.append(path)
            budget -= size
        else:
            left_out.append(path.name)
    plain += [
        f"Full report: {report_location}",
        "The report (summary.html) and CSV/Parquet files are attached.",
    ]
    if left_out:
        plain += [
            f"Not attached (over STEPWISE_SMTP_MAX_ATTACHMENT_MB): {', '.join(left_out)}; "
            f"they are in {os.path.abspath(result.out_dir)}."
        ]
    msg.set_content("\n".join(plain))
    if result.email_html:
        msg.add_alternative(result.email_html, subtype="html")
    for path in attached:
        maintype, subtype = CONTENT_TYPES.get(path.suffix) or tuple(
            (mimetypes.guess_type(path.name)[0] or "application/octet-stream").split("/", 1)
        )
        params = {"charset": "utf-8"} if maintype == "text" else None
        msg.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name, params=params
        )
    return msg


def send_email(
    result: ExportResult, settings: DeliverySettings, *, sleep: Callable[[float], None] = time.sleep
) -> DeliveryOutcome:
    smtp = settings.email
    if smtp is None:
        raise DeliveryConfigError("e-mail delivery is not configured (STEPWISE_SMTP_HOST is empty)")
    return send_email_message(
        build_email(result, smtp, settings.report_location(result)), settings, sleep=sleep
    )


def send_email_message(
    message: EmailMessage, settings: DeliverySettings, *, sleep: Callable[[float], None] = time.sleep
) -> DeliveryOutcome:
    """Send one composed message through the configured SMTP server, with the retries of every delivery."""
    smtp = settings.email
    if smtp is None:
        raise DeliveryConfigError("e-mail delivery is not configured (STEPWISE_SMTP_HOST is empty)")

    def attempt() -> str:
        context = ssl.create_default_context(cafile=smtp.ca_file)
        client: smtplib.SMTP
        if smtp.implicit_tls:
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        try:
            client.ehlo()
            if smtp.starttls and not smtp.implicit_tls:
                client.starttls(context=context)
                client.ehlo()
            if smtp.user:
                try:
                    client.login(smtp.user, smtp.password or "")
                except smtplib.SMTPAuthenticationError as exc:
                    raise _Permanent(
                        f"SMTP login refused ({exc.smtp_code}); check STEPWISE_SMTP_USER/PASSWORD"
                    ) from None
            try:
                refused = client.send_message(message)
            except smtplib.SMTPRecipientsRefused as exc:
                raise _Permanent(f"every recipient was refused: {sorted(exc.recipients)}") from None
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code >= 500:
                    raise _Permanent(f"SMTP server refused the message ({exc.smtp_code})") from None
                raise
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
        size = len(message.as_bytes())
        return f"sent {size:,} bytes to {len(smtp.recipients) - len(refused)} recipient(s)"

    return _with_retries("email", smtp.describe(), attempt, settings, [smtp.password], sleep)


# --- Slack ---------------------------------------------------------------------------------------


def slack_payload(result: ExportResult, report_location: str) -> dict[str, Any]:
    """The webhook body. Every text that Slack parses (`text`, `mrkdwn`) is escaped; text that comes
    from data (findings name campaigns, pages, sources) is also defanged, so the only link in the
    message is the report link made here and nobody is mentioned."""
    lines = headline_lines(result)
    title = f"Conversion summary · {result.period.title}" + (" · sandbox data" if result.sandbox else "")
    fallback = slack_escape(
        f"Stepwise conversion summary {result.period_label}: "
        + ", ".join(f"{label} {value} ({change})" for label, value, change in lines)
        + f". Report: {report_location}"
    )
    link = (
        slack_link(report_location, "Open the full report")
        if report_location.startswith(("http://", "https://"))
        else "Report: `" + slack_escape(report_location.replace("`", "'")) + "`"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": slack_escape(f"*{label}*\n{value}  _{change}_")}
                for label, value, change in lines
            ],
        },
    ]
    findings = result.headline.get("findings") or []
    if findings:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _clip("\n".join(f"• {slack_text(f)}" for f in findings), 2900),
                },
            }
        )
    context = [
        {
            "type": "mrkdwn",
            "text": f"{link} · {slack_escape(result.period_label)} · data: {slack_escape(result.data_source)}",
        }
    ]
    blocks.append({"type": "context", "elements": context})
    return {
        "text": _clip(fallback, 3000),
        "blocks": blocks,
        # Slack would otherwise preview a link from the message; the only link is ours, but no preview
        # of anything is wanted in a team channel.
        "unfurl_links": False,
        "unfurl_media": False,
        "stepwise": {  # ignored by Slack; lets a receiving bot or a test read plain numbers
            "period": result.period_label,
            "report": report_location,
            "data_source": result.data_source,
            "headline": {k: result.headline.get(k) for k, _, _ in HEADLINE_FIELDS},
        },
    }


def _clip(text: str, limit: int) -> str:
    """Cut escaped text without leaving half an entity (`&am`) at the end."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut


def post_slack(
    result: ExportResult, settings: DeliverySettings, *, sleep: Callable[[float], None] = time.sleep
) -> DeliveryOutcome:
    if settings.slack is None:
        raise DeliveryConfigError("Slack delivery is not configured (STEPWISE_SLACK_WEBHOOK_URL is empty)")
    return post_slack_payload(slack_payload(result, settings.report_location(result)), settings, sleep=sleep)


def post_slack_payload(
    payload: dict[str, Any], settings: DeliverySettings, *, sleep: Callable[[float], None] = time.sleep
) -> DeliveryOutcome:
    """Post one composed payload to the configured Slack webhook, with the retries of every delivery."""
    slack = settings.slack
    if slack is None:
        raise DeliveryConfigError("Slack delivery is not configured (STEPWISE_SLACK_WEBHOOK_URL is empty)")
    body = json.dumps(payload).encode("utf-8")

    def attempt() -> str:
        request = urllib.request.Request(
            slack.webhook_url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "stepwise-export"},
        )
        try:
            with urllib.request.urlopen(request, timeout=slack.timeout) as response:  # noqa: S310 - URL validated
                reply = response.read(200).decode("utf-8", "replace")
                return f"HTTP {response.status} {reply.strip()[:40]}"
        except urllib.error.HTTPError as exc:
            reply = exc.read(200).decode("utf-8", "replace").strip()[:80]
            if exc.code in (408, 429) or exc.code >= 500:
                raise _Transient(f"HTTP {exc.code} {reply}") from None
            raise _Permanent(f"HTTP {exc.code} {reply} (check STEPWISE_SLACK_WEBHOOK_URL)") from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Transient(f"{type(exc).__name__}: {reason}") from None

    path = urlsplit(slack.webhook_url).path
    secrets = [slack.webhook_url, path if len(path) > 8 else None]
    return _with_retries("slack", slack.describe(), attempt, settings, secrets, sleep)


def deliver(
    result: ExportResult,
    settings: DeliverySettings,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[DeliveryOutcome]:
    """Send the export by every configured channel; an unconfigured channel is skipped silently."""
    outcomes = []
    if settings.email is not None:
        outcomes.append(send_email(result, settings, sleep=sleep))
    if settings.slack is not None:
        outcomes.append(post_slack(result, settings, sleep=sleep))
    return outcomes
