"""The analyst file opens in the DuckDB releases analysts have (issue 18).

The demo's published file (`pipeline_marts`, built by `python -m orchestration.demo`) is opened by
DuckDB 1.4 (LTS) and 1.5 installed from PyPI in isolated environments of their own (not this
project's venv), cached under ~/.cache/stepwise/duckdb-clients so later runs only start them; `make
sql` answers a query on standard input; and the analyst questions in transforms/questions/ run and
return rows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = sorted((REPO / "transforms" / "questions").glob("*.sql"))
# The oldest release of the LTS line (the floor the storage version promises) and the newest 1.x.
CLIENT_VERSIONS = ("1.4.0", "1.5.6")
DESIGN_MARTS = (
    "conversion_catalog",
    "web_sessions_daily",
    "conversions_daily",
    "micro_conversions_daily",
    "macro_conversions_daily",
    "funnel_daily",
    "channel_funnel_daily",
    "segment_summary",
    "micro_macro_lift",
    "data_quality",
)

# Runs inside the isolated environment: only the standard library and that environment's duckdb.
PROBE = r"""
import json, sys
import duckdb

path, questions = sys.argv[1], sys.argv[2:]
con = duckdb.connect(path, read_only=True)
out = {"version": duckdb.__version__, "tables": {}, "columns": {}, "views": {}, "questions": {}}
for schema, table, comment in con.execute(
    "SELECT schema_name, table_name, comment FROM duckdb_tables() ORDER BY 1, 2"
).fetchall():
    count = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchall()[0][0]
    out["tables"][f"{schema}.{table}"] = [count, comment]
for schema, table, column, comment in con.execute(
    "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() WHERE NOT internal ORDER BY 1, 2, 3"
).fetchall():
    out["columns"][f"{schema}.{table}.{column}"] = comment
for schema, view, comment in con.execute(
    "SELECT schema_name, view_name, comment FROM duckdb_views() WHERE NOT internal ORDER BY 1, 2"
).fetchall():
    out["views"][f"{schema}.{view}"] = comment
for question in questions:
    with open(question, encoding="utf-8") as fh:
        out["questions"][question] = len(con.execute(fh.read()).fetchall())
con.close()
print(json.dumps(out))
"""


def uv_command() -> list[str]:
    """uv as the Makefile finds it: on PATH, else the module pip installed."""
    found = shutil.which("uv")
    if found:
        return [found]
    for python in ("python3", sys.executable):
        probe = subprocess.run([python, "-m", "uv", "--version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [python, "-m", "uv"]
    pytest.fail("uv is needed to install the DuckDB clients: `python3 -m pip install uv` (make env does)")


def client_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "stepwise" / "duckdb-clients"


def client_python(version: str) -> Path:
    """A venv with only duckdb==version in it, built once and reused (PyPI is reached on the first run)."""
    env_dir = client_cache() / f"duckdb-{version}"
    python = env_dir / "bin" / "python"
    ready = env_dir / ".stepwise-ready"
    if ready.is_file() and python.exists():
        return python
    shutil.rmtree(env_dir, ignore_errors=True)  # a half-built one from an interrupted run
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    uv = uv_command()
    env = {**os.environ, "UV_SYSTEM_CERTS": "1", "VIRTUAL_ENV": ""}
    for command in (
        [*uv, "venv", "--quiet", "--python", sys.executable, str(env_dir)],
        [*uv, "pip", "install", "--quiet", "--python", str(python), f"duckdb=={version}"],
    ):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
        assert done.returncode == 0, f"{' '.join(command)}: {done.stderr[-2000:]}"
    ready.write_text(version)
    return python


def project_view(path: Path) -> dict[str, Any]:
    """The same catalog, read by this project's DuckDB."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {
            f"{s}.{t}": [con.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchall()[0][0], c]
            for s, t, c in con.execute(
                "SELECT schema_name, table_name, comment FROM duckdb_tables() ORDER BY 1, 2"
            ).fetchall()
        }
        columns = {
            f"{s}.{t}.{c}": comment
            for s, t, c, comment in con.execute(
                "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() WHERE NOT internal"
            ).fetchall()
        }
        views = {
            f"{s}.{v}": c
            for s, v, c in con.execute(
                "SELECT schema_name, view_name, comment FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
    finally:
        con.close()
    return {"tables": tables, "columns": columns, "views": views}


@pytest.fixture(scope="session")
def published(pipeline_marts: Any) -> Path:
    assert pipeline_marts.published, (
        f"the demo did not publish its analyst file:\n{pipeline_marts.log[-2000:]}"
    )
    return Path(pipeline_marts.path)


@pytest.fixture(scope="session")
def working(published: Path) -> Path:
    # pipeline_marts lays out <root>/analyst/stepwise.duckdb and <root>/working/stepwise.duckdb.
    path = published.parent.parent / "working" / "stepwise.duckdb"
    assert path.is_file(), path
    return path


def test_published_file_is_in_the_lts_storage_version_and_the_working_file_is_not(
    published: Path, working: Path
) -> None:
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{published}' AS published (READ_ONLY)")
        con.execute(f"ATTACH '{working}' AS working (READ_ONLY)")
        tags = dict(
            con.execute(
                "SELECT database_name, tags['storage_version'] FROM duckdb_databases() "
                "WHERE database_name IN ('published', 'working')"
            ).fetchall()
        )
    finally:
        con.close()
    assert tags["published"] == "v1.4.0+", tags
    assert tags["working"] != tags["published"], "the working file stays on the newest format"


@pytest.mark.parametrize("version", CLIENT_VERSIONS)
def test_older_duckdb_releases_read_every_mart_comment_and_row(
    version: str, published: Path, working: Path
) -> None:
    python = client_python(version)
    done = subprocess.run(
        [str(python), "-c", PROBE, str(published), *map(str, QUESTIONS)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["version"] == version, "the probe ran in the isolated environment, not the project's"

    truth = project_view(working)  # the pipeline's own file, read by the project's DuckDB
    assert project_view(published) == truth
    for mart in DESIGN_MARTS:
        count, comment = seen["tables"][f"marts.{mart}"]
        assert count > 0 and count == truth["tables"][f"marts.{mart}"][0], mart
        assert comment and comment == truth["tables"][f"marts.{mart}"][1], mart
    # Every table (raw, staging, marts), row count, table, view and column comment is there in full.
    assert seen["tables"] == truth["tables"]
    assert seen["views"] == truth["views"]
    assert seen["columns"] == truth["columns"]
    mart_columns = [k for k in truth["columns"] if k.startswith("marts.")]
    assert mart_columns and all(seen["columns"][k] for k in mart_columns), "every mart column has its comment"
    # The analyst questions run in the older release too.
    assert all(n > 0 for n in seen["questions"].values()), seen["questions"]


def make_sql(query: str, analyst: Path) -> subprocess.CompletedProcess[str]:
    """Exactly what an analyst types: `make -s sql` with the query on standard input."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["STEPWISE_ANALYST_DB"] = str(analyst)
    return subprocess.run(
        ["make", "-s", "sql"],
        cwd=REPO,
        input=query,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_make_sql_answers_a_query_on_stdin_read_only(published: Path) -> None:
    con = duckdb.connect(str(published), read_only=True)
    try:
        sessions = con.execute("SELECT sum(sessions) FROM marts.web_sessions_daily").fetchall()[0][0]
    finally:
        con.close()
    done = make_sql(
        "SELECT 'sessions=' || sum(sessions) AS answer FROM marts.web_sessions_daily;\n", published
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"sessions={sessions}" in done.stdout, done.stdout

    # Read-only: the shell cannot change the file the pipeline replaces.
    refused = make_sql("CREATE TABLE marts.scratch (i INTEGER);\n", published)
    assert "read-only" in (refused.stdout + refused.stderr).lower(), refused.stdout + refused.stderr


def test_make_sql_without_a_file_says_to_run_the_demo(tmp_path: Path) -> None:
    done = make_sql("SELECT 1;\n", tmp_path / "missing.duckdb")
    assert done.returncode != 0
    assert "make demo" in done.stderr


@pytest.mark.parametrize("question", QUESTIONS, ids=[q.stem for q in QUESTIONS])
def test_analyst_question_returns_rows(question: Path, published: Path) -> None:
    con = duckdb.connect(str(published), read_only=True)
    try:
        rows = con.execute(question.read_text(encoding="utf-8")).fetchall()
    finally:
        con.close()
    assert rows, f"{question.name} returned no rows on the demo's analyst file"


def test_questions_are_documented_and_worded_as_associations() -> None:
    assert len(QUESTIONS) >= 5
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    causal = re.compile(r"\b(leads? to|drives?|causes?|because of)\b", re.IGNORECASE)
    for question in QUESTIONS:
        text = question.read_text(encoding="utf-8")
        assert text.startswith("-- question: "), f"{question.name} starts with the question it answers"
        assert f"transforms/questions/{question.name}" in readme, f"{question.name} is in the README"
        assert not causal.search(text.replace("not a cause", "")), question.name


@pytest.mark.parametrize(
    ("stem", "mart", "extra", "fallback"),
    [
        ("receptive_segments", "segment_summary", "", 5),
        ("micro_macro_association", "micro_macro_lift", " AND NOT is_prerequisite", 3),
    ],
)
def test_significance_questions_list_the_significant_rows_or_say_there_are_none(
    stem: str, mart: str, extra: str, fallback: int, published: Path
) -> None:
    """The verdict follows the mart's `significant`: every row that clears the bar is listed (up to 25) as
    such; only when none does are the strongest candidates shown, labelled 'not significant'."""
    question = REPO / "transforms" / "questions" / f"{stem}.sql"
    con = duckdb.connect(str(published), read_only=True)
    try:
        cursor = con.execute(question.read_text(encoding="utf-8"))
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        passing = con.execute(
            f"SELECT count(*) FROM marts.{mart} WHERE tested AND lift > 1 AND significant{extra}"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert rows
    assert all(r["lift"] > 1 for r in rows)
    significant = [r for r in rows if not r["verdict"].startswith("not significant")]
    if passing:
        assert len(significant) == len(rows) == min(passing, 25)
    else:
        assert not significant and len(rows) <= fallback
