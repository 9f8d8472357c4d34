"""The publish step writes the analyst file in DuckDB's LTS storage version, losing nothing (issue 18).

Small hand-made warehouses in tmp_path: quick, and they hold what the marts hold (tables, a view,
a macro, comments with quotes, quoted identifiers). The demo-built file, opened by DuckDB 1.4 and
1.5 themselves, is tested in tests/exports/test_analyst_file.py.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration.warehouse import (
    ANALYST_STORAGE_VERSION,
    WarehouseResource,
    _catalog,
    copy_in_storage_version,
    reapply_comments,
)


def make_working(path: Path, rows: int) -> Path:
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute(
            "CREATE OR REPLACE TABLE marts.conversions AS SELECT range AS id, 'c' || range AS name FROM range(?)",
            [rows],
        )
        con.execute('CREATE OR REPLACE TABLE marts."odd ""name""" (x INTEGER)')
        con.execute("COMMENT ON TABLE marts.conversions IS 'Conversions; it''s a mart'")
        con.execute("COMMENT ON COLUMN marts.conversions.id IS 'Row id (0-based)'")
        con.execute('COMMENT ON COLUMN marts."odd ""name""".x IS \'x, quoted "twice"\'')
        con.execute("CREATE OR REPLACE VIEW marts.recent AS SELECT * FROM marts.conversions WHERE id < 5")
        con.execute("COMMENT ON VIEW marts.recent IS 'The first five'")
        con.execute("CREATE OR REPLACE MACRO marts.rate(a, b) AS a / nullif(b, 0)")
    finally:
        con.close()
    return path


def storage_version(path: Path) -> str:
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{path}' AS f (READ_ONLY)")
        return con.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'f'"
        ).fetchall()[0][0]
    finally:
        con.close()


def test_copy_keeps_every_table_view_macro_and_comment(tmp_path: Path) -> None:
    working = make_working(tmp_path / "working.duckdb", 1000)
    target = tmp_path / "analyst.duckdb"
    summary = copy_in_storage_version(working, target, ANALYST_STORAGE_VERSION)
    assert summary == {"tables_copied": 2, "views_copied": 1, "rows_copied": 1000, "comments_reapplied": 0}
    assert storage_version(target) == "v1.4.0+"
    assert storage_version(working) != "v1.4.0+"
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{working}' AS w (READ_ONLY)")
        con.execute(f"ATTACH '{target}' AS a (READ_ONLY)")
        assert _catalog(con, "a") == _catalog(con, "w")
        assert _catalog(con, "a")["tables"][("marts", "conversions")] == "Conversions; it's a mart"
        assert con.execute("SELECT count(*) FROM a.marts.recent").fetchall() == [(5,)]
        assert con.execute("SELECT a.marts.rate(1, 4)").fetchall() == [(0.25,)]
    finally:
        con.close()


def test_comments_missing_from_a_copy_are_reapplied(tmp_path: Path) -> None:
    working = make_working(tmp_path / "working.duckdb", 10)
    bare = tmp_path / "bare.duckdb"
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{working}' AS w (READ_ONLY)")
        con.execute(f"ATTACH '{bare}' AS b (STORAGE_VERSION 'v1.4.0')")
        con.execute("COPY FROM DATABASE w TO b")
        # As if a DuckDB release dropped comments on COPY FROM DATABASE.
        for statement in (
            "COMMENT ON TABLE b.marts.conversions IS NULL",
            "COMMENT ON COLUMN b.marts.conversions.id IS NULL",
            'COMMENT ON COLUMN b.marts."odd ""name""".x IS NULL',
            "COMMENT ON VIEW b.marts.recent IS NULL",
        ):
            con.execute(statement)
        want = _catalog(con, "w")
        assert _catalog(con, "b") != want
        assert reapply_comments(con, want, _catalog(con, "b"), "b") == 4
        assert _catalog(con, "b") == want
    finally:
        con.close()


def test_publish_is_atomic_and_a_reader_of_the_old_file_keeps_reading_it(tmp_path: Path) -> None:
    working = tmp_path / "working" / "stepwise.duckdb"
    working.parent.mkdir()
    analyst = tmp_path / "analyst" / "stepwise.duckdb"
    warehouse = WarehouseResource(working_path=str(working), analyst_path=str(analyst))
    make_working(working, 100)
    first = warehouse.publish()
    assert first["storage_version"] == "v1.4.0" and first["rows_copied"] == 100

    reader = duckdb.connect(str(analyst), read_only=True)  # an analyst's session, left open
    try:
        make_working(working, 250)
        warehouse.publish()
        # The open session still reads the file it opened (the rename replaced the name, not the data).
        assert reader.execute("SELECT count(*) FROM marts.conversions").fetchall() == [(100,)]
    finally:
        reader.close()
    fresh = duckdb.connect(str(analyst), read_only=True)
    try:
        assert fresh.execute("SELECT count(*) FROM marts.conversions").fetchall() == [(250,)]
    finally:
        fresh.close()
    assert storage_version(analyst) == "v1.4.0+"
    assert sorted(p.name for p in analyst.parent.iterdir()) == ["stepwise.duckdb"], "no temporary file left"


def test_a_leftover_temporary_file_from_a_killed_publish_is_replaced(tmp_path: Path) -> None:
    import os

    working = make_working(tmp_path / "working.duckdb", 20)
    analyst = tmp_path / "analyst" / "stepwise.duckdb"
    analyst.parent.mkdir()
    leftover = analyst.with_name(f".{analyst.name}.{os.getpid()}.publishing")
    leftover.write_bytes(b"half a database")
    WarehouseResource(working_path=str(working), analyst_path=str(analyst)).publish()
    con = duckdb.connect(str(analyst), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM marts.conversions").fetchall() == [(20,)]
    finally:
        con.close()
    assert not leftover.exists()


def test_nothing_to_publish_is_a_config_error(tmp_path: Path) -> None:
    from orchestration.settings import StepwiseConfigError

    warehouse = WarehouseResource(
        working_path=str(tmp_path / "none.duckdb"), analyst_path=str(tmp_path / "a.duckdb")
    )
    with pytest.raises(StepwiseConfigError, match="nothing to publish"):
        warehouse.publish()
