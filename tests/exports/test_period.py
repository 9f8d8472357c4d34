"""Which week a run reports on, how its directory is named, and the messages when it cannot run."""

from __future__ import annotations

import datetime as dt
import os
import shutil

import duckdb
import pytest

from reporting import ExportError, Period, default_period, run_export


def test_labels_are_iso_weeks_or_date_ranges():
    assert Period(dt.date(2026, 11, 16), dt.date(2026, 11, 22)).label == "2026-W47"
    assert Period(dt.date(2026, 12, 28), dt.date(2027, 1, 3)).label == "2026-W53"
    assert Period(dt.date(2026, 11, 12), dt.date(2026, 11, 18)).label == "2026-11-12_2026-11-18"
    week = Period(dt.date(2026, 11, 16), dt.date(2026, 11, 22))
    assert week.previous() == Period(dt.date(2026, 11, 9), dt.date(2026, 11, 15))
    assert week.title == "16–22 Nov 2026"
    with pytest.raises(ExportError, match="before its start"):
        Period(dt.date(2026, 11, 22), dt.date(2026, 11, 16))


def test_default_period_is_the_last_complete_week_in_the_marts(fixture_marts, tmp_path):
    con = duckdb.connect(str(fixture_marts), read_only=True)
    try:
        assert default_period(con).label == "2026-W47"  # the fixture ends on Sunday 22 Nov
        assert default_period(con, dt.date(2026, 11, 18)).label == "2026-11-12_2026-11-18"
    finally:
        con.close()
    # Data ending on a Wednesday: the week in progress waits, the last whole week is reported.
    partial = tmp_path / "analyst.duckdb"
    shutil.copyfile(fixture_marts, partial)
    con = duckdb.connect(str(partial))
    try:
        con.execute("DELETE FROM marts.web_sessions_daily WHERE date > DATE '2026-11-18'")
        assert default_period(con).label == "2026-W46"
    finally:
        con.close()


def test_a_missing_analyst_file_or_mart_is_one_clear_message(fixture_marts, tmp_path):
    with pytest.raises(ExportError, match="does not exist: run the pipeline and publish first"):
        run_export(tmp_path / "nope.duckdb", tmp_path / "exports")
    broken = tmp_path / "analyst.duckdb"
    shutil.copyfile(fixture_marts, broken)
    con = duckdb.connect(str(broken))
    con.execute("DROP TABLE marts.micro_macro_lift")
    con.close()
    with pytest.raises(ExportError, match=r"has no marts\.micro_macro_lift"):
        run_export(broken, tmp_path / "exports")
    assert not (tmp_path / "exports").exists()


def test_rerunning_a_week_replaces_its_directory(fixture_marts, tmp_path):
    first = run_export(fixture_marts, tmp_path, period_end=dt.date(2026, 11, 22), sandbox=True)
    (first.out_dir / "stale.txt").write_text("from an older run")
    second = run_export(fixture_marts, tmp_path, period_end=dt.date(2026, 11, 22), sandbox=True)
    assert second.out_dir == first.out_dir and not (second.out_dir / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["2026-W47"]
    # Beside it only the hidden version folders: the live one and the one before (see folder_swap).
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert len(hidden) == 2 and os.readlink(second.out_dir) == hidden[-1]
    assert (first.out_dir / "funnel_daily.csv").read_text() == (
        second.out_dir / "funnel_daily.csv"
    ).read_text()
