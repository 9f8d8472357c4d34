"""The DuckDB warehouse resource: the pipeline's working file, and the analyst copy it publishes.

`WarehouseResource.publish()` checkpoints the working file and replaces the analyst file by an atomic
rename of a copy written in DuckDB 1.4's storage version (`copy_in_storage_version`), so analysts on
any DuckDB from 1.4 on see the old file or the new one, never a half-written one, and never hold a
lock the pipeline needs. Built by `orchestration.connections.build_resources` from the settings.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from orchestration.settings import StepwiseConfigError, load_settings, resolve_path

DEFAULT_WORKING_DB = "data/working/stepwise.duckdb"
DEFAULT_ANALYST_DB = "data/stepwise.duckdb"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WarehouseResource(dg.ConfigurableResource):
    """The pipeline's own DuckDB file, and the analyst copy it publishes by atomic rename.

    The pipeline only ever opens `working_path`; analysts open `analyst_path` read-only. Publishing
    copies a checkpointed working file beside the analyst file and renames it over, so a reader sees
    the old file or the new one, and never holds a lock the pipeline needs.
    """

    working_path: str = DEFAULT_WORKING_DB
    analyst_path: str = DEFAULT_ANALYST_DB
    memory_limit: str = "2GB"
    threads: int = 2

    @property
    def working_file(self) -> Path:
        return resolve_path(self.working_path)

    @property
    def analyst_file(self) -> Path:
        return resolve_path(self.analyst_path)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every run's writing steps need the warehouse, so this runs before the first of them in
        # every run: the whole environment (GA4, HubSpot, export...) is validated here, and a bad
        # GA4 setting stops a run before any HubSpot step has written.
        load_settings()
        self.check_config()

    def check_config(self) -> None:
        if self.threads < 1:
            raise StepwiseConfigError(
                f"warehouse.threads is {self.threads}: set STEPWISE_DUCKDB_THREADS to 1 or more"
            )
        if self.working_file.resolve() == self.analyst_file.resolve():
            raise StepwiseConfigError(
                f"warehouse: the working file and the analyst file are both {self.working_file}; "
                "set STEPWISE_WORKING_DB and STEPWISE_ANALYST_DB to different paths"
            )

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        self.check_config()
        path = self.working_file
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(
            str(path),
            read_only=read_only,
            config={"memory_limit": self.memory_limit, "threads": self.threads},
        )
        try:
            yield con
        finally:
            con.close()

    def publish(self) -> dict[str, Any]:
        """Checkpoint the working file and atomically replace the analyst file with a copy of it.

        The copy is written in ANALYST_STORAGE_VERSION (not copied byte for byte): the working file
        stays on the newest storage format, while the analyst file opens in DuckDB 1.4 (the LTS
        release) and every later one, which is what the CLI packages, JDBC/ODBC drivers, R and BI
        tools that analysts use ship. The temporary file beside the target is fsynced, verified and
        renamed over the old one, so a reader sees the old file or the new one, never a partial one.
        """
        working = self.working_file
        if not working.exists():
            raise StepwiseConfigError(f"warehouse: nothing to publish, {working} does not exist yet")
        with self.connect() as con:
            con.execute("CHECKPOINT")
        wal = working.with_name(working.name + ".wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise RuntimeError(f"{wal} still holds changes after CHECKPOINT; another writer is open")
        analyst = self.analyst_file
        analyst.parent.mkdir(parents=True, exist_ok=True)
        tmp = analyst.with_name(f".{analyst.name}.{os.getpid()}.publishing")
        leftovers = (tmp, tmp.with_name(tmp.name + ".wal"))
        try:
            for path in leftovers:  # a publish killed half-way leaves these; ATTACH would reuse them
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            copied = copy_in_storage_version(
                working, tmp, ANALYST_STORAGE_VERSION, memory_limit=self.memory_limit, threads=self.threads
            )
            if leftovers[1].exists() and leftovers[1].stat().st_size > 0:
                raise RuntimeError(f"{leftovers[1]} still holds changes after the copy was closed")
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            # Open the copy before it goes live: a file DuckDB cannot read is never published.
            check = duckdb.connect(str(tmp), read_only=True)
            check.close()
            os.replace(tmp, analyst)
            _fsync_dir(analyst.parent)
        finally:
            for path in leftovers:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return {
            "analyst_file": str(analyst),
            "bytes": analyst.stat().st_size,
            "storage_version": ANALYST_STORAGE_VERSION,
            **copied,
        }


# DuckDB 1.4 is the long-term-support release: files in its storage version open in 1.4.0 and later.
ANALYST_STORAGE_VERSION = "v1.4.0"


def _sql_string(value: str) -> str:
    # ATTACH takes no prepared parameters for its path; a quoted literal with quotes doubled is exact.
    return "'" + value.replace("'", "''") + "'"


def _catalog(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, Any]:
    """Every table, view and comment of one attached database (DuckDB's internal objects left out)."""
    tables = con.execute(
        "SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE database_name = ? AND NOT internal",
        [database],
    ).fetchall()
    views = con.execute(
        "SELECT schema_name, view_name, comment FROM duckdb_views() WHERE database_name = ? AND NOT internal",
        [database],
    ).fetchall()
    columns = con.execute(
        "SELECT c.schema_name, c.table_name, c.column_name, c.comment FROM duckdb_columns() c "
        "WHERE c.database_name = ? AND NOT c.internal",
        [database],
    ).fetchall()
    return {
        "tables": {(s, t): c for s, t, c in tables},
        "views": {(s, v): c for s, v, c in views},
        "columns": {(s, t, col): c for s, t, col, c in columns},
    }


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def reapply_comments(
    con: duckdb.DuckDBPyConnection, want: dict[str, Any], got: dict[str, Any], database: str
) -> int:
    """COMMENT ON every table, view and column of `database` whose comment differs from `want`'s."""
    # COMMENT ON takes no prepared parameter: the comment goes in as a quoted literal (quotes doubled).
    statements = []
    for kind, part in (("TABLE", "tables"), ("VIEW", "views")):
        for (schema, name), comment in want[part].items():
            if comment is not None and got[part].get((schema, name)) != comment:
                statements.append(
                    f"COMMENT ON {kind} {_ident(database)}.{_ident(schema)}.{_ident(name)}"
                    f" IS {_sql_string(comment)}"
                )
    for (schema, table, column), comment in want["columns"].items():
        if comment is not None and got["columns"].get((schema, table, column)) != comment:
            statements.append(
                f"COMMENT ON COLUMN {_ident(database)}.{_ident(schema)}.{_ident(table)}.{_ident(column)}"
                f" IS {_sql_string(comment)}"
            )
    for statement in statements:
        con.execute(statement)
    return len(statements)


def copy_in_storage_version(
    source: Path, target: Path, storage_version: str, *, memory_limit: str = "2GB", threads: int = 2
) -> dict[str, Any]:
    """Copy every schema, table, view, macro and COMMENT of `source` into a new file `target` written
    in `storage_version`, and check that nothing was lost (objects, comments, row counts).

    COPY FROM DATABASE carries comments in DuckDB 2.0; any it drops (older or newer releases) are
    re-applied from the source's catalog, so the check below holds either way.
    """
    con = duckdb.connect(":memory:", config={"memory_limit": memory_limit, "threads": threads})
    try:
        con.execute(f"ATTACH {_sql_string(str(source))} AS stepwise_working (READ_ONLY)")
        con.execute(
            f"ATTACH {_sql_string(str(target))} AS stepwise_published "
            f"(STORAGE_VERSION {_sql_string(storage_version)})"
        )
        con.execute("COPY FROM DATABASE stepwise_working TO stepwise_published")
        want = _catalog(con, "stepwise_working")
        got = _catalog(con, "stepwise_published")
        reapplied = reapply_comments(con, want, got, "stepwise_published")
        got = _catalog(con, "stepwise_published")
        for part in ("tables", "views", "columns"):
            if got[part] != want[part]:
                missing = sorted(set(want[part].items()) - set(got[part].items()), key=str)[:5]
                raise RuntimeError(f"publish: the {storage_version} copy lost {part}: {missing}")
        rows = 0
        for schema, table in want["tables"]:
            counts = [
                con.execute(f"SELECT count(*) FROM {db}.{_ident(schema)}.{_ident(table)}").fetchall()[0][0]
                for db in ("stepwise_working", "stepwise_published")
            ]
            if counts[0] != counts[1]:
                raise RuntimeError(
                    f"publish: {schema}.{table} has {counts[1]} rows in the copy, {counts[0]} in the source"
                )
            rows += counts[0]
        con.execute("DETACH stepwise_published")  # checkpoints the copy into its file
    finally:
        con.close()
    return {
        "tables_copied": len(want["tables"]),
        "views_copied": len(want["views"]),
        "rows_copied": rows,
        "comments_reapplied": reapplied,
    }


# --- the in-process sandbox ---------------------------------------------------------------------
