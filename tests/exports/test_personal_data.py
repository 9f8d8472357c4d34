"""No personal data in any export: every file written for a period (and the e-mail body) is scanned for
the sandbox store's contacts (e-mails, names, phone numbers); the guard refuses an export that leaks."""

from __future__ import annotations

import datetime as dt
import re
import shutil

import duckdb
import pyarrow.parquet as pq

from reporting import run_export
from reporting.marts import MARTS

PERIOD_END = dt.date(2026, 11, 22)
PERSONAL_COLUMN = re.compile(r"(^id$|contact_id|email|phone|firstname|lastname|^name$)", re.I)


def export_texts(result) -> dict[str, str]:
    """Every file's text: HTML, CSV and JSON as written; Parquet as its column names and string values."""
    texts = {}
    for path in result.files:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            parts = [" ".join(table.column_names)]
            for column in table.columns:
                if str(column.type) in ("string", "large_string"):
                    parts.extend(v for v in column.to_pylist() if v is not None)
            texts[path.name] = "\n".join(parts)
        else:
            texts[path.name] = path.read_text(encoding="utf-8")
    texts["(e-mail body)"] = result.email_html or ""
    return texts


def contacts(store) -> dict[str, set[str]]:
    rows = store.con.execute("SELECT email, firstname, lastname, phone FROM contacts").fetchall()
    return {
        "emails": {r[0].lower() for r in rows if r[0]},
        "names": {f"{r[1]} {r[2]}".lower() for r in rows if r[1] and r[2]},
        "phones": {r[3] for r in rows if r[3]},
    }


def leaks(text: str, people: dict[str, set[str]]) -> list[str]:
    lowered = text.lower()
    found = [e for e in people["emails"] if e in lowered]
    found += [n for n in people["names"] if n in lowered]
    found += [p for p in people["phones"] if p in text]
    return found


def test_no_contact_data_from_the_store_in_any_export(pipeline_export, pipeline_store):
    people = contacts(pipeline_store)
    assert len(people["emails"]) > 100 and people["names"] and people["phones"]
    texts = export_texts(pipeline_export)
    assert len(texts) == len(pipeline_export.files) + 1 and "summary.html" in texts
    # The scan can find what it looks for: one planted e-mail, name and phone are each caught.
    sample = {k: next(iter(v)) for k, v in people.items()}
    assert len(leaks(f"x {sample['emails']} {sample['names'].title()} {sample['phones']} y", people)) == 3
    for name, text in texts.items():
        assert not leaks(text, people), name
        assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text), name  # nothing e-mail-like at all


def test_no_identifying_columns_in_csv_or_parquet(pipeline_export):
    tables = [p for p in pipeline_export.files if p.suffix in (".csv", ".parquet")]
    assert len(tables) == 2 * len(MARTS)  # a CSV and a Parquet file per mart
    for path in tables:
        names = (
            pq.read_table(path).column_names
            if path.suffix == ".parquet"
            else path.open().readline().strip().split(",")
        )
        assert not [n for n in names if PERSONAL_COLUMN.search(n)], (path.name, names)


def test_columns_added_upstream_do_not_reach_the_export(fixture_marts, tmp_path, pipeline_store):
    """A personal column that appears in a mart later is not exported: only reviewed columns are selected."""
    marts = tmp_path / "analyst.duckdb"
    shutil.copyfile(fixture_marts, marts)
    email, first, last, phone = pipeline_store.con.execute(
        "SELECT email, firstname, lastname, phone FROM contacts LIMIT 1"
    ).fetchall()[0]
    con = duckdb.connect(str(marts))
    con.execute("ALTER TABLE marts.conversions_daily ADD COLUMN contact_email VARCHAR")
    con.execute("ALTER TABLE marts.conversions_daily ADD COLUMN contact_id BIGINT")
    con.execute("ALTER TABLE marts.conversions_daily ADD COLUMN contact_name VARCHAR")
    con.execute(
        "UPDATE marts.conversions_daily SET contact_email = ?, contact_id = 4242, contact_name = ?",
        [email, f"{first} {last} {phone}"],
    )
    con.close()
    result = run_export(marts, tmp_path / "exports", period_end=PERIOD_END, sandbox=True)
    header = (result.out_dir / "conversions_daily.csv").open().readline()
    assert "contact" not in header
    assert not leaks("\n".join(export_texts(result).values()), contacts(pipeline_store))


def test_an_email_in_an_exported_text_column_is_redacted_not_exported(
    fixture_marts, tmp_path, pipeline_store
):
    marts = tmp_path / "marts.duckdb"
    shutil.copyfile(fixture_marts, marts)
    email = pipeline_store.con.execute("SELECT email FROM contacts LIMIT 1").fetchall()[0][0]
    con = duckdb.connect(str(marts))
    # A campaign named after a person's address: a text column the export does select. (The file is
    # named like the schema on purpose: the export attaches it under another name, tables stay found.)
    con.execute("UPDATE marts.marts.segment_summary SET segment_value = ? WHERE rank = 1", [email])
    con.close()
    # One such value no longer refuses the week (anyone could switch the report off with one UTM):
    # it is redacted everywhere and the data-quality notes say so (tests/exports/test_hostile_guard.py).
    result = run_export(marts, tmp_path / "exports", period_end=PERIOD_END, sandbox=True)
    assert not leaks("\n".join(export_texts(result).values()), contacts(pipeline_store))
    assert result.redactions and any("shaped like an e-mail address" in n for n in result.notes)
