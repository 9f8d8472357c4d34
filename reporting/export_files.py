"""Writing one period's export folder: every mart as CSV and Parquet, the manifest, a last scan for
personal data, and the atomic flip that makes the new folder live (reporting/folder_swap.py).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb

from reporting import csv_safe, folder_swap
from reporting.errors import PersonalDataError
from reporting.export_columns import columns_to_export
from reporting.marts import MARTS, date_filter, ident, mart_columns, segment_window
from reporting.period import Period
from reporting.personal_data import EMAIL_PATTERN, find_personal_data


def copy_mart(
    con: duckdb.DuckDBPyConnection,
    table: str,
    period: Period,
    out_dir: Path,
    segment_windows: dict[str, tuple[dt.date, dt.date] | None],
) -> list[Path]:
    cols = columns_to_export(con, table)
    if not cols:
        return []
    all_cols = mart_columns(table)
    filt = date_filter(all_cols)
    where, params = "", {}
    if filt is not None:
        if filt[1]:
            where, params = f"WHERE {filt[0]}", {"start": period.start, "end": period.end}
        elif segment_windows.get(table) is not None:
            ws, we = segment_windows[table]  # type: ignore[misc]
            where, params = f"WHERE {filt[0]}", {"window_start": ws, "window_end": we}
    order = ", ".join(ident(c) for c in cols[:4])
    query = f"SELECT {', '.join(ident(c) for c in cols)} FROM marts.{ident(table)} {where} ORDER BY {order}"
    # CSV text cells are made formula-safe (csv_safe); Parquet keeps the marts' values as they are.
    csv_path = csv_safe.write_csv(con, query, params, out_dir / f"{table}.csv", cols, all_cols)
    parquet_path = out_dir / f"{table}.parquet"
    literal = str(parquet_path).replace("'", "''")
    con.execute(f"COPY ({query}) TO '{literal}' (FORMAT parquet, COMPRESSION zstd)", params)
    return [csv_path, parquet_path]


def _tidy(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def headline_summary(
    period: Period, headline: dict, findings: list[str], sandbox: bool, quality: dict
) -> dict[str, Any]:
    """Plain numbers for metadata, Slack and the manifest."""
    out: dict[str, Any] = {
        "period": period.label,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "data_source": "sandbox" if sandbox else "ga4+hubspot",
    }
    for key, m in headline.items():
        # Sums of DOUBLE money carry float noise (13525.4299…); plain numbers travel rounded.
        out[key] = _tidy(m["value"])
        out[f"{key}_previous"] = _tidy(m["previous"])
        out[f"{key}_change"] = _tidy(m["change"])
    out["findings"] = findings
    out["thresholded_days"] = quality["thresholded_days"]
    out["other_row_days"] = quality["other_row_days"]
    return out


def write_folder(
    con: duckdb.DuckDBPyConnection,
    period: Period,
    out_dir: Path,
    *,
    html: str,
    email_html: str,
    headline: dict[str, Any],
    sandbox: bool,
    generated_at: dt.datetime,
) -> list[Path]:
    """Write summary.html, every mart's CSV and Parquet and manifest.json as `out_dir`, all or nothing.

    A new version folder (umask permissions) is filled beside `out_dir` and made live by an atomic
    symlink flip (folder_swap); if anything fails, or an e-mail-like string turns up in a written file
    or in the e-mail body, the new folder is discarded and the old one stays. Returns the live paths.
    """
    staging = folder_swap.new_version_dir(out_dir)
    try:
        (staging / "summary.html").write_text(html, encoding="utf-8")
        windows = {t: segment_window(con, t, period) for t in ("segment_summary", "micro_macro_lift")}
        files = [staging / "summary.html"]
        for table in MARTS:
            files += copy_mart(con, table, period, staging, windows)
        manifest = {
            "period": period.label,
            "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat(),
            "data_source": "sandbox" if sandbox else "ga4+hubspot",
            "generated_at": generated_at.isoformat(),
            "headline": headline,
            "files": sorted(p.name for p in files) + ["manifest.json"],
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        files.append(staging / "manifest.json")
        hits = find_personal_data(files)
        hits += [f"e-mail body: {m.group(0)[:3]}…" for m in EMAIL_PATTERN.finditer(email_html)]
        if hits:
            raise PersonalDataError(
                f"refusing to write the {period.label} export: {len(hits)} e-mail-like string(s) found "
                f"({'; '.join(hits[:5])}); nothing was kept"
            )
    except BaseException:
        folder_swap.discard(staging)
        raise
    folder_swap.publish(staging, out_dir)
    return [out_dir / p.name for p in files]
