"""Delivery of a written export: e-mail over SMTP and a Slack incoming webhook, each optional.

Settings come from the environment only. Each channel is tried a few times with exponential backoff;
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reporting.report import ExportResult
from reporting.safe_text import slack_escape, slack_link, slack_text

log = logging.getLogger("stepwise.exports.delivery")

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}
CONTENT_TYPES = {
    ".csv": ("text", "csv"),
    ".parquet": ("application", "vnd.apache.parquet"),
    ".html": ("text", "html"),
    ".json": ("application", "json"),
}


class DeliveryConfigError(ValueError):
    """A delivery setting in the environment is unusable; raised before anything is written or sent."""


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise DeliveryConfigError(f"environment: {name}={raw!r} is not a yes/no value; use true or false")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise DeliveryConfigError(f"environment: {name}={raw!r} must be a whole number from {low} to {high}")
    return int(raw)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    implicit_tls: bool = False
    ca_file: str | None = None
    timeout: float = 30.0
    max_attachment_bytes: int = 15 * 1024 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings | None:
        host = env.get("STEPWISE_SMTP_HOST", "").strip()
        if not host:
            return None
        starttls = _flag(env, "STEPWISE_SMTP_STARTTLS")
        default_port = 587 if starttls in (None, True) else 25
        port = _int(env, "STEPWISE_SMTP_PORT", default_port, 1, 65535)
        if starttls is None:
            starttls = port == 587
        implicit_tls = port == 465
        recipients = tuple(
            a.strip() for a in env.get("STEPWISE_SMTP_TO", "").replace(";", ",").split(",") if a.strip()
        )
        if not recipients:
            raise DeliveryConfigError(
                "environment: STEPWISE_SMTP_HOST is set but STEPWISE_SMTP_TO is empty; "
                "set STEPWISE_SMTP_TO to one or more addresses, comma separated (or unset the host)"
            )
        user = env.get("STEPWISE_SMTP_USER", "").strip() or None
        password = env.get("STEPWISE_SMTP_PASSWORD") or None
        if user and not password:
            raise DeliveryConfigError(
                "environment: STEPWISE_SMTP_USER is set without STEPWISE_SMTP_PASSWORD; set both, or neither "
                "for a relay that needs no login"
            )
        if user and not (starttls or implicit_tls) and host not in LOOPBACK_HOSTS:
            raise DeliveryConfigError(
                f"environment: STEPWISE_SMTP_USER is set but STEPWISE_SMTP_STARTTLS is off for {host}:{port}; "
                "refusing to send the password in clear text. Set STEPWISE_SMTP_STARTTLS=true (or port 465)"
            )
        sender = env.get("STEPWISE_SMTP_FROM", "").strip() or (user if user and "@" in user else "")
        if not sender:
            raise DeliveryConfigError(
                "environment: STEPWISE_SMTP_FROM is empty; set it to the sender address, "
                "e.g. STEPWISE_SMTP_FROM=stepwise@example.com"
            )
        for address in (sender, *recipients):
            if "@" not in address:
                raise DeliveryConfigError(
                    f"environment: {address!r} in STEPWISE_SMTP_FROM/STEPWISE_SMTP_TO is not an e-mail address"
                )
        ca_file = env.get("STEPWISE_SMTP_CA_FILE", "").strip() or None
        if ca_file and not Path(ca_file).is_file():
            raise DeliveryConfigError(
                f"environment: STEPWISE_SMTP_CA_FILE={ca_file!r} is not a file; point it at the PEM bundle "
                "that signs your SMTP server's certificate, or unset it to use the system's"
            )
        return cls(
            host=host,
            port=port,
            sender=sender,
            recipients=recipients,
            starttls=bool(starttls),
            user=user,
            password=password,
            implicit_tls=implicit_tls,
            ca_file=ca_file,
            timeout=float(_int(env, "STEPWISE_SMTP_TIMEOUT", 30, 1, 600)),
            max_attachment_bytes=_int(env, "STEPWISE_SMTP_MAX_ATTACHMENT_MB", 15, 0, 100) * 1024 * 1024,
        )

    def describe(self) -> str:
        security = "implicit TLS" if self.implicit_tls else "STARTTLS" if self.starttls else "plain"
        login = ", login" if self.user else ""
        return f"smtp://{self.host}:{self.port} ({security}{login}) to {len(self.recipients)} recipient(s)"


@dataclass(frozen=True)
class SlackSettings:
    webhook_url: str = field(repr=False)
    timeout: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlackSettings | None:
        url = env.get("STEPWISE_SLACK_WEBHOOK_URL", "").strip()
        if not url:
            return None
        parts = urlsplit(url)
        loopback = parts.hostname in LOOPBACK_HOSTS
        if (
            parts.scheme not in ("https", "http")
            or not parts.hostname
            or (parts.scheme == "http" and not loopback)
        ):
            raise DeliveryConfigError(
                "environment: STEPWISE_SLACK_WEBHOOK_URL must be an https:// URL "
                "(Slack app > Incoming Webhooks > Webhook URL)"
            )
        return cls(webhook_url=url)

    def describe(self) -> str:
        # The path of a webhook URL is its secret; the host alone says where it goes.
        return f"slack webhook at {urlsplit(self.webhook_url).hostname}"


@dataclass(frozen=True)
class DeliverySettings:
    email: SmtpSettings | None = None
    slack: SlackSettings | None = None
    attempts: int = 3
    backoff_seconds: float = 2.0
    report_base_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DeliverySettings:
        base = env.get("STEPWISE_EXPORT_BASE_URL", "").strip() or None
        raw_backoff = env.get("STEPWISE_DELIVERY_BACKOFF_SECONDS", "").strip()
        try:
            backoff = float(raw_backoff) if raw_backoff else 2.0
        except ValueError:
            backoff = -1.0
        if not 0 <= backoff <= 300:
            raise DeliveryConfigError(
                f"environment: STEPWISE_DELIVERY_BACKOFF_SECONDS={raw_backoff!r} must be seconds from 0 to 300"
            )
        return cls(
            email=SmtpSettings.from_env(env),
            slack=SlackSettings.from_env(env),
            attempts=_int(env, "STEPWISE_DELIVERY_ATTEMPTS", 3, 1, 10),
            backoff_seconds=backoff,
            report_base_url=base.rstrip("/") if base else None,
        )

    @property
    def configured(self) -> list[str]:
        return [name for name, s in (("email", self.email), ("slack", self.slack)) if s is not None]

    def report_location(self, result: ExportResult) -> str:
        if self.report_base_url:
            return f"{self.report_base_url}/{result.period_label}/summary.html"
        # The week's stable path (a symlink to its current version folder), not the version itself,
        # which the export after next removes.
        return os.path.abspath(result.report_path)


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
