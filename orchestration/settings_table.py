"""The table of every environment variable Stepwise reads: name, field, default, accepted form and
parser, grouped as docs/SETTINGS.md shows them (`describe_defaults()` writes that page).

orchestration/settings.py reads the environment once and parses it with this table into one
`StepwiseSettings`. To add a setting: one `EnvSetting` in `SETTINGS` here and a field of the same
name on `StepwiseSettings` there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def resolve_path(raw: str) -> Path:
    """Relative paths are relative to the repository root, so `dagster dev` and the demo agree."""
    candidate = Path(os.path.expanduser(raw))
    return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate


# --- parsers: str -> value, or ValueError carrying nothing (the spec's `accepted` text says why) --

_ASCII_INT = re.compile(r"[0-9]+", re.ASCII)
_ASCII_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_MEMORY = re.compile(
    r"([0-9]+(\.[0-9]+)?) ?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)|[0-9]{1,2}%|100%", re.ASCII | re.I
)
_PORTAL = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_PRESET = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def ascii_int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not _ASCII_INT.fullmatch(raw) or not low <= int(raw) <= high:
            raise ValueError
        return int(raw)

    return parse


def ascii_decimal(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        if not _ASCII_DECIMAL.fullmatch(raw) or not low <= float(raw) <= high:
            raise ValueError
        return float(raw)

    return parse


def iso_date(raw: str) -> date:
    # date.fromisoformat alone also takes "20250101" and week dates; the README promises YYYY-MM-DD.
    if not _ISO_DATE.fullmatch(raw):
        raise ValueError
    return date.fromisoformat(raw)


def time_zone_name(raw: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError from exc
    return raw


def memory_limit(raw: str) -> str:
    if not _MEMORY.fullmatch(raw):
        raise ValueError
    return raw


def flag(raw: str) -> bool:
    value = raw.lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError


def cron(raw: str) -> str:
    from dagster._utils.schedules import is_valid_cron_string

    if not is_valid_cron_string(raw):
        raise ValueError
    return raw


def path(raw: str) -> str:
    if "\x00" in raw or len(raw) > 4096:
        raise ValueError
    return raw


def existing_file(raw: str) -> str:
    if not resolve_path(path(raw)).is_file():
        raise ValueError
    return raw


def url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.hostname or any(c.isspace() for c in raw):
            raise ValueError
        return raw.rstrip("/")

    return parse


def property_ids(raw: str) -> tuple[str, ...]:
    ids = tuple(p.strip() for p in raw.split(",") if p.strip())
    if not ids or not all(_ASCII_INT.fullmatch(p) for p in ids):
        raise ValueError
    return ids


def token(raw: str) -> str:
    if not raw.isascii() or not raw.isprintable() or any(c.isspace() for c in raw):
        raise ValueError
    return raw


def portal_id(raw: str) -> str:
    if not _PORTAL.fullmatch(raw):
        raise ValueError
    return raw


def sandbox_preset(raw: str) -> str:
    if not _PRESET.fullmatch(raw):
        raise ValueError
    from connectors.sandbox.store import PRESETS

    if raw not in PRESETS:
        raise ValueError
    return raw


def sandbox_accounts(raw: str) -> str:
    if raw not in ("single", "multi"):
        raise ValueError
    return raw


def text(raw: str) -> str:
    if not raw.isprintable() or len(raw) > 1000:
        raise ValueError
    return raw


@dataclass(frozen=True)
class EnvSetting:
    """One environment variable: its field on StepwiseSettings, default, accepted form and parser."""

    name: str
    field: str
    default: str | None  # as the variable would be written; None: unset means "not used"
    accepted: str  # finishes "NAME='value' must be ..."
    parse: Callable[[str], Any]
    group: str
    secret: bool = False


def _s(
    name: str, field: str, default: str | None, accepted: str, parse: Callable[[str], Any], **kw: Any
) -> Any:
    return EnvSetting(name, field, default, accepted, parse, **kw)


SETTINGS: tuple[EnvSetting, ...] = (
    # -- schedule and partitions
    _s("STEPWISE_START_DATE", "start_date", "2025-01-01",
       "a date written YYYY-MM-DD, the first day you want to be able to backfill", iso_date, group="schedule"),
    _s("STEPWISE_TIME_ZONE", "time_zone", "America/New_York",
       "an IANA time zone, your GA4 property's zone, e.g. America/New_York or Europe/Berlin",
       time_zone_name, group="schedule"),
    _s("STEPWISE_SCHEDULE_HOUR", "schedule_hour", "6",
       "an hour from 0 to 23 (in STEPWISE_TIME_ZONE), ASCII digits", ascii_int(0, 23), group="schedule"),
    _s("STEPWISE_LOOKBACK_DAYS", "lookback_days", "3",
       "a whole number of days from 0 to 30, ASCII digits (GA4 revises about the last 3 days)",
       ascii_int(0, 30), group="schedule"),
    # -- warehouse
    _s("STEPWISE_WORKING_DB", "working_db", "data/working/stepwise.duckdb",
       "a file path (relative paths are relative to the repository)", path, group="warehouse"),
    _s("STEPWISE_ANALYST_DB", "analyst_db", "data/stepwise.duckdb",
       "a file path, not the working file (relative paths are relative to the repository)", path,
       group="warehouse"),
    _s("STEPWISE_DUCKDB_MEMORY_LIMIT", "duckdb_memory_limit", "2GB",
       "a size with its unit such as 2GB, 512MB or 4GiB, or a share of RAM such as 50%", memory_limit,
       group="warehouse"),
    _s("STEPWISE_DUCKDB_THREADS", "duckdb_threads", "2",
       "a whole number of threads from 1 to 256, ASCII digits", ascii_int(1, 256), group="warehouse"),
    # -- configuration files and checks
    _s("STEPWISE_CATALOG", "catalog_path", "transforms/config/conversion_catalog.yaml",
       "the path of a conversion catalog YAML file", path, group="model"),
    _s("STEPWISE_CHANNEL_MAPPING", "channel_mapping_path", "transforms/config/channel_mapping.yaml",
       "the path of a channel mapping YAML file", path, group="model"),
    _s("STEPWISE_EXPERIMENTS", "experiments_path", "transforms/config/experiments.yaml",
       "the path of an experiments YAML file", path, group="model"),
    _s("STEPWISE_ACCOUNTS", "accounts_path", None,
       "the path of an accounts YAML file (GA4 properties, HubSpot portals, custom GA4 reports; see "
       "examples/accounts.yaml); unset: STEPWISE_GA4_PROPERTY_IDS / HUBSPOT_ACCESS_TOKEN or the sandbox",
       path, group="model"),
    _s("STEPWISE_RECONCILE_TOLERANCE", "reconcile_tolerance", "0.01",
       "a share from 0 to 1 written with ASCII digits and a point, e.g. 0.01", ascii_decimal(0, 1),
       group="model"),
    _s("STEPWISE_LEADS_TOLERANCE", "leads_tolerance", "0.10",
       "a share from 0 to 1 written with ASCII digits and a point, e.g. 0.10", ascii_decimal(0, 1),
       group="model"),
    _s("STEPWISE_ALERT_LOOKBACK_DAYS", "alert_lookback_days", "28",
       "a whole number of days from 1 to 366, ASCII digits: conversion anomalies this recent and not yet "
       "delivered are sent (older ones only stay in the mart)", ascii_int(1, 366), group="model"),
    # -- GA4
    _s("STEPWISE_GA4_PROPERTY_IDS", "ga4_property_ids", None,
       "numeric GA4 property ids (ASCII digits, from GA4 Admin > Property settings), comma separated; "
       "unset for the sandbox", property_ids, group="ga4"),
    _s("GOOGLE_APPLICATION_CREDENTIALS", "ga4_credentials_file", None,
       "the path of an existing service-account JSON key file; unset for application default credentials",
       existing_file, group="ga4"),
    _s("STEPWISE_GA4_API_ENDPOINT", "ga4_api_endpoint", None,
       "an http(s):// URL (a proxy or a test server)", url("http", "https"), group="ga4"),
    # -- HubSpot
    _s("HUBSPOT_ACCESS_TOKEN", "hubspot_access_token", None,
       "the private app's access token exactly, printable ASCII without spaces; unset for the sandbox",
       token, group="hubspot", secret=True),
    _s("HUBSPOT_PORTAL_ID", "hubspot_portal_id", "hubspot",
       "a label of 1 to 64 ASCII letters, digits, - or _ (your portal id)", portal_id, group="hubspot"),
    _s("STEPWISE_HUBSPOT_HOST", "hubspot_host", None,
       "an http(s):// URL (a proxy or a test server)", url("http", "https"), group="hubspot"),
    _s("HUBSPOT_INCREMENTAL_OVERLAP_SECONDS", "hubspot_incremental_overlap_seconds", "300",
       "a number of seconds from 0 to 604800, ASCII digits; how far before the data cursor an incremental "
       "extract starts (the default covers HubSpot's usual search-index lag with room to spare)",
       ascii_decimal(0, 604_800), group="hubspot"),
    _s("STEPWISE_RATE_BUDGET", "rate_budget", None,
       "off, or the path of the SQLite file in which every run on this host books its HubSpot requests "
       "(unset: data/state/rate-budget.sqlite for a real portal, none for the sandbox)", path, group="hubspot"),
    # -- the sandbox (used when no credentials are set)
    _s("STEPWISE_SANDBOX_PRESET", "sandbox_preset", "demo", "a store preset: demo or large",
       sandbox_preset, group="sandbox"),
    _s("STEPWISE_SANDBOX_ACCOUNTS", "sandbox_accounts", "single",
       "single (one GA4 property, one HubSpot portal) or multi (three properties in New York, Berlin and Tokyo "
       "time, two portals; connectors/sandbox/accounts.py)", sandbox_accounts, group="sandbox"),
    _s("STEPWISE_SANDBOX_SEED", "sandbox_seed", "7", "a whole number, ASCII digits",
       ascii_int(0, 2**32 - 1), group="sandbox"),
    _s("STEPWISE_SANDBOX_DAYS", "sandbox_days", None, "a whole number of days from 1 to 3660, ASCII digits",
       ascii_int(1, 3660), group="sandbox"),
    _s("STEPWISE_SANDBOX_SESSIONS_PER_DAY", "sandbox_sessions_per_day", None,
       "a whole number from 1 to 10000000, ASCII digits", ascii_int(1, 10_000_000), group="sandbox"),
    _s("STEPWISE_SANDBOX_END_DATE", "sandbox_end_date", None,
       "a date written YYYY-MM-DD (default: yesterday)", iso_date, group="sandbox"),
    _s("STEPWISE_SANDBOX_REVISIONS", "sandbox_revisions", "on",
       "on or off (off: GA4 days are served settled)", flag, group="sandbox"),
    _s("STEPWISE_SANDBOX_URL", "sandbox_url", None,
       "the http(s):// URL of a sandbox already running (`make sandbox`)", url("http", "https"),
       group="sandbox"),
    _s("STEPWISE_SANDBOX_HUBSPOT_TOKEN", "sandbox_hubspot_token", "sandbox-private-app-token",
       "printable ASCII without spaces", token, group="sandbox", secret=True),
    # -- export and delivery
    _s("STEPWISE_EXPORT_CRON", "export_cron", "0 7 * * 1",
       "a cron expression of five fields, e.g. '0 7 * * 1' for Mondays at 07:00 (in STEPWISE_TIME_ZONE)",
       cron, group="export"),
    _s("STEPWISE_EXPORT_DIR", "export_dir", "data/exports", "a directory path", path, group="export"),
    _s("STEPWISE_EXPORT_BASE_URL", "export_base_url", None,
       "the http(s):// URL the export folder is served at (links in e-mail and Slack)",
       url("http", "https"), group="export"),
    _s("STEPWISE_CRM_COHORT_LAG_DAYS", "crm_cohort_lag_days", None,
       "a whole number of days >= 0, ASCII digits (default: measured from the stage history, else 28)",
       ascii_int(0, 3660), group="export"),
    _s("STEPWISE_DELIVERY_ATTEMPTS", "delivery_attempts", "3", "a whole number from 1 to 10, ASCII digits",
       ascii_int(1, 10), group="export"),
    _s("STEPWISE_DELIVERY_BACKOFF_SECONDS", "delivery_backoff_seconds", "2",
       "seconds from 0 to 300, ASCII digits with an optional decimal point", ascii_decimal(0, 300),
       group="export"),
    _s("STEPWISE_SMTP_HOST", "smtp_host", None, "a host name; unset for no e-mail", text, group="export"),
    _s("STEPWISE_SMTP_PORT", "smtp_port", "587", "a port from 1 to 65535, ASCII digits (465: implicit TLS)",
       ascii_int(1, 65535), group="export"),
    _s("STEPWISE_SMTP_STARTTLS", "smtp_starttls", None, "true or false (default: true on port 587)", flag,
       group="export"),
    _s("STEPWISE_SMTP_FROM", "smtp_from", None, "the sender's e-mail address", text, group="export"),
    _s("STEPWISE_SMTP_TO", "smtp_to", None, "e-mail addresses, comma separated", text, group="export"),
    _s("STEPWISE_SMTP_USER", "smtp_user", None, "the SMTP login (with STEPWISE_SMTP_PASSWORD)", text,
       group="export"),
    _s("STEPWISE_SMTP_PASSWORD", "smtp_password", None, "the SMTP password", text, group="export",
       secret=True),
    _s("STEPWISE_SMTP_CA_FILE", "smtp_ca_file", None, "the path of an existing PEM bundle", existing_file,
       group="export"),
    _s("STEPWISE_SMTP_TIMEOUT", "smtp_timeout", "30", "seconds from 1 to 600, ASCII digits",
       ascii_int(1, 600), group="export"),
    _s("STEPWISE_SMTP_MAX_ATTACHMENT_MB", "smtp_max_attachment_mb", "15", "megabytes from 0 to 100, ASCII digits",
       ascii_int(0, 100), group="export"),
    _s("STEPWISE_SLACK_WEBHOOK_URL", "slack_webhook_url", None,
       "an https:// URL (Slack app > Incoming Webhooks > Webhook URL)", url("https", "http"), group="export",
       secret=True),
    # -- running
    _s("DAGSTER_HOME", "dagster_home", ".dagster_home", "a directory path", path, group="running"),
    _s("STEPWISE_UI_PORT", "ui_port", "3000", "a port from 1 to 65535, ASCII digits", ascii_int(1, 65535),
       group="running"),
)  # fmt: skip
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


def describe_defaults() -> str:
    """docs/SETTINGS.md: every variable, its default and accepted form, grouped."""
    titles = {
        "schedule": "Schedule and partitions",
        "warehouse": "Warehouse (DuckDB)",
        "model": "Configuration files and checks",
        "ga4": "GA4 (unset STEPWISE_GA4_PROPERTY_IDS: the sandbox serves GA4)",
        "hubspot": "HubSpot (unset HUBSPOT_ACCESS_TOKEN: the sandbox serves HubSpot)",
        "sandbox": "The built-in sandbox",
        "export": "Export and delivery",
        "running": "Running",
    }
    lines = [
        "# Settings",
        "",
        "<!-- generated by `python -m orchestration.settings --markdown`; edit orchestration/settings_table.py -->",
        "",
        "Every setting is an environment variable, read and validated once by `orchestration/settings.py`",
        "(`load_settings()`): when the code location loads, at the start of every run (before any step",
        "writes) and at the start of `make demo`. A bad value stops with one message naming the variable,",
        "its value (secrets hidden, long values cut) and the accepted form. Numbers and ids take ASCII",
        "digits only. An empty variable counts as unset.",
        "",
    ]
    for group, title in titles.items():
        lines += [f"## {title}", "", "| variable | default | accepted |", "|---|---|---|"]
        for spec in SETTINGS:
            if spec.group != group:
                continue
            default = f"`{spec.default}`" if spec.default is not None and not spec.secret else "unset"
            if spec.secret and spec.default is not None:
                default = "a sandbox value"
            lines.append(f"| `{spec.name}` | {default} | {spec.accepted.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)
