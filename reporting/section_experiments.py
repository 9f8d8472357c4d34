"""The weekly report's experiments section: per experiment, the variants' rates with intervals for the micro
and the macro conversions side by side, the lift against control with its always-valid interval, and the
verdict in words. Reads `marts.experiment_readout` only (absent table or no rows: no section)."""

from __future__ import annotations

from typing import Any

import duckdb

__all__ = ["experiments_section"]

_COLUMNS = (
    "experiment",
    "variant",
    "is_control",
    "conversion_name",
    "tier",
    "window_start",
    "window_end",
    "users",
    "converters",
    "rate",
    "rate_ci_lower",
    "rate_ci_upper",
    "lift",
    "lift_ci_lower",
    "lift_ci_upper",
    "p_value",
    "significant",
    "srm_p_value",
    "srm_flag",
    "verdict",
)


def _exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts' AND table_name = 'experiment_readout'"
        ).fetchall()[0][0]
    )


def _lead(verdict: str) -> str:
    """One sentence in words around the verdict (association wording: the test randomised, but the report
    says what the readout shows, not why)."""
    if verdict.startswith("sample-ratio mismatch"):
        return "Sample-ratio mismatch: the variants did not get the planned split of users, so assignment or tracking is broken. Do not read its lifts."
    if verdict.startswith("no detectable difference"):
        return (
            verdict[0].upper()
            + verdict[1:]
            + " (on the macro conversion): the test cannot yet tell the variants apart."
        )
    return "Readout: " + verdict + " (always-valid 95 % intervals, safe to read every day)."


def experiments_section(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One dict per experiment: name, window, verdict, lead sentence, conversions (micro first) and, per
    variant, a cell per conversion."""
    if not _exists(con):
        return []
    cur = con.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM marts.experiment_readout "
        "ORDER BY experiment, tier DESC, conversion_name, is_control DESC, variant"
    )
    rows = [dict(zip(_COLUMNS, r, strict=True)) for r in cur.fetchall()]
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        exp = out.setdefault(
            r["experiment"],
            {
                "name": r["experiment"],
                "window_start": r["window_start"],
                "window_end": r["window_end"],
                "verdict": r["verdict"],
                "lead": _lead(r["verdict"]),
                "srm_flag": bool(r["srm_flag"]),
                "srm_p_value": r["srm_p_value"],
                "conversions": [],
                "variants": {},
            },
        )
        if (r["conversion_name"], r["tier"]) not in exp["conversions"]:
            exp["conversions"].append((r["conversion_name"], r["tier"]))
        variant = exp["variants"].setdefault(
            r["variant"],
            {"name": r["variant"], "is_control": bool(r["is_control"]), "users": r["users"], "cells": {}},
        )
        variant["cells"][r["conversion_name"]] = r
    for exp in out.values():
        exp["conversions"].sort(key=lambda c: 0 if c[1] == "micro" else 1)
        exp["variants"] = sorted(exp["variants"].values(), key=lambda v: (not v["is_control"], v["name"]))
    return list(out.values())
