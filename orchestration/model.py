"""The warehouse model as Dagster sees it: one table per SQL file of `transforms`, with its inputs.

Tables and dependencies are read from the SQL files themselves (every `raw.x`, `staging.x` or
`marts.x` a file mentions is an input), so a new SQL file is a new asset with its lineage, and
the UI graph is the model's graph. Building a table goes through the transforms runner.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

import transforms

# The analyst-facing tables of DESIGN.md (names fixed).
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
LAYERS = ("staging", "marts")
_TABLE_REF = re.compile(r"\b(raw|staging|marts)\s*\.\s*\"?([a-z_][a-z0-9_]*)\"?", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_HEADER = re.compile(r"^\s*--\s?(.*)$")


@dataclass(frozen=True)
class ModelTable:
    layer: str
    name: str
    sql_path: Path | None
    inputs: tuple[str, ...] = ()  # "schema.table"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def fqn(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([self.layer, self.name])


def sql_root() -> Path:
    return Path(transforms.__file__).resolve().parent / "sql"


def _header(text: str) -> dict[str, str]:
    """`-- key: value` lines at the top of a model file (model, partition, table, column ...)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _HEADER.match(line)
        if not match:
            break
        key, sep, value = match.group(1).partition(":")
        if sep and " " not in key.strip():
            found.setdefault(key.strip().lower(), value.strip())
    return found


def _from_sql_file(layer: str, path: Path) -> ModelTable:
    text = path.read_text(encoding="utf-8")
    code = _COMMENT.sub(" ", text)
    name = path.stem
    inputs = sorted({f"{s.lower()}.{t.lower()}" for s, t in _TABLE_REF.findall(code)} - {f"{layer}.{name}"})
    header = _header(text)
    return ModelTable(layer, name, path, tuple(inputs), header.get("table", ""), extra=header)


@functools.cache
def model_tables() -> tuple[ModelTable, ...]:
    root = sql_root()
    found: list[ModelTable] = []
    for layer in LAYERS:
        folder = root / layer
        if folder.is_dir():
            found += [_from_sql_file(layer, p) for p in sorted(folder.glob("*.sql"))]
    return tuple(found)


def tables_in(layer: str) -> list[ModelTable]:
    return [t for t in model_tables() if t.layer == layer]


def mart_names() -> list[str]:
    names = [t.name for t in tables_in("marts")]
    return names or list(DESIGN_MARTS)


MART_KEYS = [dg.AssetKey(["marts", name]) for name in mart_names()]


def build_table(con: duckdb.DuckDBPyConnection, table: ModelTable) -> None:
    """Build one table with the transforms runner (which renders the SQL and comments it)."""
    from transforms import build

    build.build_table(con, table.fqn)
