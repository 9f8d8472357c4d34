"""Association, never cause (issue 11): the phrases retired from the statistics' wording appear nowhere in the
rendered report, the analyst tables' comments, README or transforms/STATISTICS.md."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]
# Causal or person-level wording the micro_macro_lift / segment_summary text used or could slip back to.
RETIRED = re.compile(
    r"\b(leads? to|led to|leading to|drives|causes|caused by|because of|those who did|go(?:es)? on to)\b",
    re.IGNORECASE,
)


def retired(text: str) -> list[str]:
    return sorted({m.group(0).lower() for m in RETIRED.finditer(text)})


def test_the_pattern_catches_the_retired_phrases():
    assert retired("Micro conversions that lead to macro; those who did it; drives sales") == [
        "drives",
        "lead to",
        "those who did",
    ]
    assert retired("associated with macro conversions; contacts with it") == []


def test_rendered_report_and_email_say_association(pipeline_export):
    html = pipeline_export.report_path.read_text(encoding="utf-8")
    assert "associated with macro conversions" in html
    assert "false discovery rate is within 5 %" in html
    assert retired(html) == []
    assert retired(pipeline_export.email_html or "") == []


def test_analyst_table_comments_say_association(pipeline_marts):
    con = duckdb.connect(str(pipeline_marts.path), read_only=True)
    try:
        comments = con.execute(
            "SELECT comment FROM duckdb_tables() WHERE schema_name = 'marts' AND comment IS NOT NULL "
            "UNION ALL SELECT comment FROM duckdb_columns() WHERE schema_name = 'marts' AND comment IS NOT NULL"
        ).fetchall()
    finally:
        con.close()
    text = "\n".join(c[0] for c in comments)
    assert "association" in text
    assert retired(text) == []


def test_docs_say_association():
    statistics = (REPO / "transforms" / "STATISTICS.md").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert retired(statistics) == []
    assert retired(readme) == []
