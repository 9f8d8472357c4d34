"""The weekly summary export: one self-contained HTML report plus CSV and Parquet of the summary marts.

Reads only `marts.*` from a read-only connection to the analyst file, aggregates in SQL, and writes
everything for one period under `<out_root>/<period label>/`. The directory is assembled beside its
final place and renamed in, so a reader (or a mail job) never sees half a report.

This module puts the report together; each job has its own module:
- which days: `period.py`; what is read: `marts.py`; each section's data: `section_*.py`;
- the CRM cohort lag: `cohort_lag.py`; the English: `wording.py`; charts: `charts.py`;
- which columns leave: `export_columns.py`; personal data: `personal_data.py`;
- writing the folder: `export_files.py` and `folder_swap.py`.

Personal data never leaves: every export selects named aggregate columns only (a column named like
personal data refuses the export), text values shaped like e-mail addresses are redacted before the
report reads them (`personal_data.py`), and a last scan of every written file for e-mail-like strings
refuses to keep a directory that still has one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import jinja2

from reporting import (
    charts,
    export_files,
    personal_data,
    section_alerts,
    section_channels,
    section_funnels,
    section_headline,
    section_quality,
    section_segments,
    wording,
)
from reporting.cohort_lag import parse_lag_setting
from reporting.errors import ExportError
from reporting.marts import MARTS, check_marts, detect_sandbox
from reporting.period import Period, default_period
from reporting.section_experiments import experiments_section

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class ExportResult:
    period: Period
    out_dir: Path
    files: list[Path]
    headline: dict[str, Any]
    sandbox: bool
    notes: list[str] = field(default_factory=list)
    # An e-mail-safe digest (tables and inline styles, no SVG: most mail clients drop inline SVG).
    email_html: str | None = field(default=None, repr=False)
    # Text values shaped like e-mail addresses that were redacted (table, column, counts; never the value).
    redactions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def period_label(self) -> str:
        return self.period.label

    @property
    def report_path(self) -> Path:
        return self.out_dir / "summary.html"

    @property
    def data_source(self) -> str:
        return "sandbox" if self.sandbox else "ga4+hubspot"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["int"] = charts.fmt_int
    env.filters["pct"] = charts.fmt_pct
    env.filters["money"] = lambda v: "–" if v is None else f"${v:,.0f}"
    env.filters["kmoney"] = wording.kmoney
    env.filters["signed_pct"] = lambda v: (
        "–" if v is None else f"{'+' if v >= 0 else '−'}{abs(v) * 100:.1f} %"
    )
    env.filters["times"] = wording.fmt_times
    env.filters["q"] = wording.fmt_q
    env.filters["num"] = lambda v, d=3: (
        "" if v is None else f"{float(v):.{d}g}" if isinstance(v, float) else str(v)
    )
    env.filters["raw"] = lambda v: "" if v is None else repr(float(v)) if isinstance(v, float) else str(v)
    env.filters["human"] = wording.humanise
    env.filters["metric_value"] = wording.metric_value
    return env


def build_summary(
    con: duckdb.DuckDBPyConnection,
    period_start: dt.date,
    period_end: dt.date,
    out_dir: Path | str,
    *,
    sandbox: bool,
    crm_cohort_lag_days: int | str | None = None,
    redactions: Sequence[personal_data.Redaction] = (),
) -> ExportResult:
    """Write summary.html and CSV/Parquet of the summary marts for one period into `out_dir`.

    `con` is a read-only connection to the analyst file. `out_dir` is replaced as a whole.
    `crm_cohort_lag_days`: how old a contact cohort must be before its CRM funnel is reported (the
    `STEPWISE_CRM_COHORT_LAG_DAYS` setting, passed in by the export asset; unset: measured from the
    stage history, else 28).
    """
    period = Period(period_start, period_end)
    lag_setting = parse_lag_setting(crm_cohort_lag_days)
    out_dir = Path(out_dir)
    check_marts(con)
    catalog_tiers = {
        r[0]: r[1]
        for r in con.execute("SELECT conversion_name, tier FROM marts.conversion_catalog").fetchall()
    }
    (data_end,) = con.execute("SELECT max(date) FROM marts.web_sessions_daily").fetchall()[0]
    headline = section_headline.headline_section(con, period)
    conversions = section_headline.conversion_table(con, period)
    funnels = section_funnels.funnels_section(con, period, catalog_tiers, lag_setting)
    trends = section_headline.trends_section(con, period, conversions)
    segments = section_segments.segments_section(con, period)
    micro_macro = section_segments.micro_macro_section(con, period)
    channel = section_channels.channel_section(con, period)
    alerts = section_alerts.alerts_section(con, period)
    ttc = section_alerts.time_to_convert_section(con)
    quality = section_quality.data_quality_section(con, period, sandbox, data_end, funnels)
    redaction_note = personal_data.data_quality_note(list(redactions))
    if redaction_note is not None:
        quality["notes"].append(redaction_note)
    findings = wording.key_findings(headline, funnels, segments, micro_macro)
    generated_at = dt.datetime.now(dt.UTC).replace(microsecond=0)

    context = {
        "period": period,
        "previous": period.previous(),
        "sandbox": sandbox,
        "headline": headline,
        "findings": findings,
        "conversions": conversions,
        "funnels": funnels,
        "trends": trends,
        "segments": segments,
        "micro_macro": micro_macro,
        "channel": channel,
        "alerts": alerts,
        "ttc": ttc,
        "quality": quality,
        "generated_at": generated_at,
        "marts": MARTS,
        "experiments": experiments_section(con),
    }
    env = _environment()
    html = env.get_template("summary.html.j2").render(**context)
    email_html = env.get_template("email.html.j2").render(**context)

    headline_out = export_files.headline_summary(period, headline, findings, sandbox, quality)
    files = export_files.write_folder(
        con,
        period,
        out_dir,
        html=html,
        email_html=email_html,
        headline=headline_out,
        sandbox=sandbox,
        generated_at=generated_at,
    )
    return ExportResult(
        period=period,
        out_dir=out_dir,
        files=files,
        headline=headline_out,
        sandbox=sandbox,
        notes=[n["text"] for n in quality["notes"]],
        email_html=email_html,
        redactions=[r.as_dict() for r in redactions],
    )


def run_export(
    analyst_path: Path | str,
    out_root: Path | str = "data/exports",
    period_end: dt.date | str | None = None,
    *,
    period_days: int = 7,
    sandbox: bool | None = None,
    crm_cohort_lag_days: int | str | None = None,
) -> ExportResult:
    """Open the analyst file read-only, pick the period, and write its export under `out_root/<label>/`."""
    analyst_path = Path(analyst_path)
    if not analyst_path.is_file():
        raise ExportError(
            f"analyst file {analyst_path} does not exist: run the pipeline and publish first "
            "(`make demo`), or set STEPWISE_ANALYST_DB to the published file"
        )
    # A bad setting fails before the analyst file is opened.
    lag_setting = parse_lag_setting(crm_cohort_lag_days)
    if isinstance(period_end, str):
        try:
            period_end = dt.date.fromisoformat(period_end)
        except ValueError as exc:
            raise ExportError(f"period_end {period_end!r} is not a date; use YYYY-MM-DD") from exc
    if analyst_path.stem.lower() in ("marts", "main", "system", "temp"):
        # A file named like a schema makes `marts.x` ambiguous; attach it under a neutral name instead.
        con = duckdb.connect()
        literal = str(analyst_path).replace("'", "''")
        con.execute(f"ATTACH '{literal}' AS stepwise_analyst (READ_ONLY)")
        con.execute("USE stepwise_analyst")
    else:
        con = duckdb.connect(str(analyst_path), read_only=True)
    try:
        check_marts(con)
        period = default_period(con, period_end, period_days)
        sandbox_data = detect_sandbox(con) if sandbox is None else sandbox
        # E-mail-shaped text values (public UTM/form input) are redacted, not a reason to refuse the week.
        redactions = personal_data.redact_marts(con)
        return build_summary(
            con,
            period.start,
            period.end,
            Path(out_root) / period.label,
            sandbox=sandbox_data,
            crm_cohort_lag_days=lag_setting,
            redactions=redactions,
        )
    finally:
        with contextlib.suppress(Exception):
            con.close()


__all__ = [
    "ExportError",
    "ExportResult",
    "Period",
    "build_summary",
    "run_export",
]
