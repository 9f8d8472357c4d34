"""The warehouse model as Dagster sees it: one asset per model of `transforms.build` (one SQL file
each), with the inputs its contract declares (transforms.model_contracts checks them against what the SQL
reads), so a new SQL file is a new asset with its lineage and the UI graph is the model's graph. The
runner builds all of them in one transaction.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from transforms.build import MART_TABLES

# The analyst-facing tables of DESIGN.md (names fixed), as the transforms build them.
DESIGN_MARTS = MART_TABLES
LAYERS = ("staging", "marts")


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


@functools.cache
def model_tables() -> tuple[ModelTable, ...]:
    """The runner's models in build order, with the inputs their contracts declare."""
    from transforms.build import MODELS

    found: list[ModelTable] = []
    for m in MODELS:
        found.append(
            ModelTable(
                m.schema,
                m.name,
                Path(m.path),
                tuple(sorted(m.inputs)),
                m.table_comment,
                extra={"write": m.write, "contract": m},
            )
        )
    return tuple(found)


def tables_in(layer: str) -> list[ModelTable]:
    return [t for t in model_tables() if t.layer == layer]


def mart_names() -> list[str]:
    names = [t.name for t in tables_in("marts")]
    return names or list(DESIGN_MARTS)


MART_KEYS = [dg.AssetKey(["marts", name]) for name in mart_names()]


def build_models(con: duckdb.DuckDBPyConnection, dates: list[Any] | str | None = None) -> Any:
    """Every staging table and mart in one transaction (transforms.build.build_all): readers of the
    working file see the previous build or this one. `dates=None` is a full build; "changed" rebuilds
    what was loaded since the last build."""
    from transforms.build import build_all

    catalog, mapping = load_model_config()
    return build_all(con, catalog, mapping, dates=dates)


def load_model_config() -> tuple[Any, Any]:
    """(conversion catalog, channel mapping), from STEPWISE_CATALOG / STEPWISE_CHANNEL_MAPPING or the
    defaults shipped in transforms/config. Raises transforms' ConfigError (file, line, field, fix)."""
    from orchestration.settings import SETTINGS_BY_NAME, load_settings, resolve_path
    from transforms.catalog import (
        DEFAULT_CATALOG_PATH,
        DEFAULT_CHANNEL_MAPPING_PATH,
        load_catalog,
        load_channel_mapping,
    )

    settings = load_settings()

    def chosen(path: str, name: str, default: Path) -> Path:
        # The shipped default resolves inside transforms/config wherever the repository is.
        return default if path == SETTINGS_BY_NAME[name].default else resolve_path(path)

    catalog = load_catalog(chosen(settings.catalog_path, "STEPWISE_CATALOG", DEFAULT_CATALOG_PATH))
    mapping = load_channel_mapping(
        chosen(settings.channel_mapping_path, "STEPWISE_CHANNEL_MAPPING", DEFAULT_CHANNEL_MAPPING_PATH)
    )
    return catalog, mapping
