"""Every environment setting of Stepwise, read, parsed and validated in this one module.

`load_settings()` reads the environment once and returns a frozen `StepwiseSettings`, or raises one
`StepwiseConfigError` naming each bad variable, its value (secrets hidden, long values cut) and the
accepted form. Numbers and ids accept ASCII digits only: `²` or full-width digits are refused, not
read as numbers. Nothing else in `connectors/`, `transforms/`, `reporting/` or `orchestration/` reads
`os.environ` (the sandbox's own command line, `python -m connectors.sandbox`, is the one exception):
reporting gets its settings passed in (`StepwiseSettings.delivery`, `crm_cohort_lag_days`).

When it runs: at code-location load (the partitions and schedules are built from it), at the start
of every run (the warehouse resource's setup, before any step writes), and at the start of
`make demo`. So a bad GA4 setting stops a run before a HubSpot step writes anything.

The table of variables, defaults, accepted forms and parsers (`SETTINGS`) is in
orchestration/settings_table.py, and is written out to docs/SETTINGS.md by
`python -m orchestration.settings --markdown`; a test keeps the two in step. To add a setting: one
`EnvSetting` in `SETTINGS` there and a field of the same name on `StepwiseSettings` here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field

# The table's names that the rest of Stepwise imports from here, beside the settings themselves.
from orchestration.settings_table import PROJECT_ROOT as PROJECT_ROOT
from orchestration.settings_table import SETTINGS as SETTINGS
from orchestration.settings_table import SETTINGS_BY_NAME as SETTINGS_BY_NAME
from orchestration.settings_table import describe_defaults as describe_defaults
from orchestration.settings_table import property_ids as property_ids
from orchestration.settings_table import resolve_path as resolve_path

OWNERS = ["team:data-platform"]
DUCKDB_POOL = "duckdb"
# A value is quoted in a message up to this many characters: a pasted file or a hostile value must
# not turn one error into a page.
MAX_QUOTED = 60


class StepwiseConfigError(Exception):
    """A configuration problem, detected before any API call or write."""


# --- the one read of the process environment ---------------------------------------------------


def environ() -> dict[str, str]:
    """A copy of the process environment: the only place Stepwise reads it."""
    return dict(os.environ)


def set_environ(name: str, value: str, *, only_if_unset: bool = False) -> None:
    """Set a variable for this process and its children (DAGSTER_HOME, the demo's settled GA4 days)."""
    if only_if_unset and name in os.environ:
        return
    os.environ[name] = value


class StepwiseSettings(BaseModel):
    """The parsed environment. Field names follow `SETTINGS`; see docs/SETTINGS.md for each."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    start_date: date
    time_zone: str
    schedule_hour: int
    lookback_days: int
    working_db: str
    analyst_db: str
    duckdb_memory_limit: str
    duckdb_threads: int
    catalog_path: str
    channel_mapping_path: str
    experiments_path: str
    accounts_path: str | None = None
    reconcile_tolerance: float
    leads_tolerance: float
    alert_lookback_days: int
    ga4_property_ids: tuple[str, ...] | None = None
    ga4_credentials_file: str | None = None
    ga4_api_endpoint: str | None = None
    hubspot_access_token: str | None = Field(default=None, repr=False)
    hubspot_portal_id: str
    hubspot_host: str | None = None
    hubspot_incremental_overlap_seconds: float
    rate_budget: str | None = None
    sandbox_preset: str
    sandbox_accounts: str
    sandbox_seed: int
    sandbox_days: int | None = None
    sandbox_sessions_per_day: int | None = None
    sandbox_end_date: date | None = None
    sandbox_revisions: bool
    sandbox_url: str | None = None
    sandbox_hubspot_token: str = Field(repr=False)
    export_cron: str
    export_dir: str
    export_base_url: str | None = None
    crm_cohort_lag_days: int | None = None
    delivery_attempts: int
    delivery_backoff_seconds: float
    smtp_host: str | None = None
    smtp_port: int
    smtp_starttls: bool | None = None
    smtp_from: str | None = None
    smtp_to: str | None = None
    smtp_user: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_ca_file: str | None = None
    smtp_timeout: int
    smtp_max_attachment_mb: int
    slack_webhook_url: str | None = Field(default=None, repr=False)
    dagster_home: str
    ui_port: int
    # Cross-field delivery settings (reporting.delivery_settings.DeliverySettings), built from the
    # variables above by the delivery module's own rules.
    delivery: Any = Field(default=None, repr=False)

    # -- derived facts: the one place "sandbox or real" is decided ---------------------------------

    @property
    def ga4_is_sandbox(self) -> bool:
        return not self.ga4_property_ids and not self.accounts_path

    @property
    def hubspot_is_sandbox(self) -> bool:
        # An accounts file names each portal's own token variable: the sandbox never stands in for one.
        return not self.hubspot_access_token and not self.accounts_path

    @property
    def working_file(self) -> Path:
        return resolve_path(self.working_db)

    @property
    def analyst_file(self) -> Path:
        return resolve_path(self.analyst_db)

    @property
    def dagster_home_dir(self) -> Path:
        return resolve_path(self.dagster_home).resolve()

    def sandbox_store_overrides(self) -> dict[str, int]:
        overrides = {"days": self.sandbox_days, "sessions_per_day": self.sandbox_sessions_per_day}
        return {k: v for k, v in overrides.items() if v is not None}


def quoted(value: str, secret: bool = False) -> str:
    """A value as a message shows it: secrets hidden, long values cut to MAX_QUOTED characters."""
    if secret:
        return "(hidden)"
    if len(value) > MAX_QUOTED:
        return repr(value[:MAX_QUOTED]) + f"… ({len(value)} characters)"
    return repr(value)


def load_settings(env: Mapping[str, str] | None = None) -> StepwiseSettings:
    """Parse and validate every setting; one StepwiseConfigError lists every problem found."""
    env = environ() if env is None else env
    values: dict[str, Any] = {}
    problems: list[str] = []
    for spec in SETTINGS:
        raw = env.get(spec.name)
        # An empty variable means unset, as it does for every shell-written .env file.
        if raw is not None and spec.name not in ("STEPWISE_SMTP_PASSWORD",):
            raw = raw.strip()
        if not raw:
            values[spec.field] = None if spec.default is None else spec.parse(spec.default)
            continue
        try:
            values[spec.field] = spec.parse(raw)
        except ValueError:
            problems.append(f"{spec.name}={quoted(raw, spec.secret)} must be {spec.accepted}")
    if not problems:
        cross = _cross_checks(values)
        problems.extend(cross)
    if not problems:
        from reporting.delivery_settings import DeliveryConfigError, DeliverySettings

        try:
            values["delivery"] = DeliverySettings.from_env(env)
        except DeliveryConfigError as exc:
            problems.append(str(exc).removeprefix("environment: "))
    if problems:
        raise StepwiseConfigError("environment: " + "; ".join(problems))
    return StepwiseSettings(**values)


def _cross_checks(values: dict[str, Any]) -> list[str]:
    problems = []
    if resolve_path(values["working_db"]).resolve() == resolve_path(values["analyst_db"]).resolve():
        problems.append(
            f"STEPWISE_ANALYST_DB={quoted(values['analyst_db'])} must be a different file from "
            "STEPWISE_WORKING_DB (the pipeline writes one, analysts read the other)"
        )
    if values.get("accounts_path") and values.get("ga4_property_ids"):
        problems.append(
            "STEPWISE_ACCOUNTS and STEPWISE_GA4_PROPERTY_IDS are both set: list the properties in the "
            "accounts file and unset STEPWISE_GA4_PROPERTY_IDS (it is the one-property shorthand)"
        )
    return problems


def named_secret(name: str) -> str | None:
    """The value of the environment variable an accounts file names for a HubSpot token (`token_env`),
    stripped; None when unset or empty. Only the caller that builds the client sees it."""
    value = os.environ.get(name, "").strip()
    return value or None


# --- load-time values: the definitions are shaped by them -------------------------------------


def time_zone() -> str:
    # Daily partitions are property-local days, as GA4 reports them (the sandbox property's zone).
    return load_settings().time_zone


def start_date() -> str:
    return load_settings().start_date.isoformat()


def schedule_hour() -> int:
    return load_settings().schedule_hour


def child_environment(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a child process (the daemon, the webserver) starts with: this one's, plus
    `overrides`. Children validate it themselves through load_settings()."""
    return {**os.environ, **(overrides or {})}


_DAILY: list[dg.DailyPartitionsDefinition] = []


def __getattr__(name: str) -> Any:
    # DAILY is built on first use, not at import: importing this module (for StepwiseConfigError, say)
    # never fails; loading the definitions, which uses DAILY, stops with the one settings message.
    if name == "DAILY":
        if not _DAILY:
            loaded = load_settings()
            _DAILY.append(
                dg.DailyPartitionsDefinition(
                    start_date=loaded.start_date.isoformat(), timezone=loaded.time_zone
                )
            )
        return _DAILY[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(describe_defaults())
    else:
        try:
            print(repr(load_settings()))
        except StepwiseConfigError as exc:
            print(exc, file=sys.stderr)
            sys.exit(2)
