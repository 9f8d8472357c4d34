"""Delivery settings: SMTP e-mail, the Slack webhook, retries and the report's link, parsed from
the STEPWISE_SMTP_* / STEPWISE_SLACK_* / STEPWISE_DELIVERY_* / STEPWISE_EXPORT_BASE_URL values.

The mapping is passed in: orchestration/settings.py reads the environment once and builds
`StepwiseSettings.delivery` with `DeliverySettings.from_env(env)`, so a bad delivery setting stops a
run before anything is written or sent. Channels whose variables are unset are `None` (not configured).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from reporting.report import ExportResult

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


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
