"""Model contracts: what each SQL model under transforms/sql promises, declared once in its header, and
the build order derived from them.

Every SQL file is one SELECT under a header (docs/CONTRACTS.md, "Model contracts"):

    -- model: marts.funnel_daily                      schema.name (the file is <name>.sql)
    -- write: replace_dates_by_source                 how the build writes it (WRITE_STRATEGIES)
    -- grain: one row per date x source_system x ...  the grain in words
    -- key: date, source_system, funnel_name, step_name   columns that identify a row (unique)
    -- inputs: marts.conversions_daily, staging.conversion_catalog   every table the SQL reads
    -- table: <table comment>
    -- column <name> <TYPE> [NOT NULL]: <column comment>  one per column, in the SELECT's order
    -- accepted <column>: value | value | ...         the only values the column may hold (NULL aside)

The build, the Dagster lineage and checks, the report's column lists and the export test fixtures all
read these contracts; nothing else declares a model's columns, key or inputs. The order is a topological
sort of the inputs: a SQL file without a contract, a reference to a table nothing provides, an input
declared but not read (or read but not declared) and a cycle all fail `load_models` with one message
naming the file and the fix.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from transforms.raw_schema import EXPECTED_RAW

SQL_DIR = Path(__file__).resolve().parent / "sql"
# Folders whose models build_all builds; sql/experiments holds marts.experiment_readout, built by its own
# asset (transforms.experiments) under the same kind of contract.
BUILD_DIRS = ("staging", "marts")
EXPERIMENT_DIRS = ("experiments",)

# How a model's table is written (incremental builds rebuild only the scope; a full build replaces all).
WRITE_STRATEGIES: dict[str, str] = {
    "replace_dates": "delete and re-insert the rows of the requested dates (GA4-derived)",
    "replace_dates_by_source": "GA4 rows of the requested dates, other rows of the CRM-touched dates",
    "replace_dates_and_crm_dates": "every row of the requested dates and of the dates changed CRM records touch",
    "upsert_contacts": "delete and re-insert the rows of the re-staged HubSpot contacts (portal_id, contact_key)",
    "upsert_deals": "delete and re-insert the rows of the re-staged HubSpot deals (portal_id, deal_id)",
    "replace_all": "rebuilt whole on every build",
    "replace_all_statistics": "rebuilt whole: the SQL's counts, then statistics computed in Python",
}
# Strategies that read the CRM date scope, which is final only once every CRM-keyed model is re-staged:
# those models come after every model in CRM_SCOPE_MODELS (an ordering rule, not lineage).
CRM_DATE_STRATEGIES = ("replace_dates_by_source", "replace_dates_and_crm_dates")
CRM_KEYED_STRATEGIES = ("upsert_contacts", "upsert_deals")
CRM_SCOPE_TABLES = ("staging.hubspot_merges", "staging.hubspot_deals")

# Tables the build provides without a SQL model: configuration loaded from Python, state kept across
# builds, and the raw tables the connectors load.
LOOKUP_TABLES = ("staging.conversion_catalog", "staging.channel_mapping", "staging.channel_groups")
STATE_TABLES = ("staging.conversion_anomaly_deliveries", "staging.build_state")
RAW_TABLES = tuple(f"raw.{name}" for name in (*EXPECTED_RAW, "ga4_properties", "ga4_experiments"))
SOURCE_TABLES = frozenset((*LOOKUP_TABLES, *STATE_TABLES, *RAW_TABLES))

_HEADER_KEYS = ("model", "write", "grain", "key", "inputs", "table")
_TABLE_REF = re.compile(r"\b(raw|staging|marts)\s*\.\s*\"?([A-Za-z_][A-Za-z0-9_]*)\"?", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# The build sets the HubSpot stage variables from staging.hubspot_lifecycle_stages: SQL reading them
# reads that table.
_VARIABLE_INPUTS = {
    re.compile(r"getvariable\('sw_stage_(names|paths)'\)|\bsw_contact_properties\("): (
        "staging.hubspot_lifecycle_stages"
    ),
}


class BuildError(RuntimeError):
    """The warehouse cannot be built as asked (missing time zone, unusable raw data, a broken contract...)."""


class ContractError(BuildError):
    """A SQL model's contract is missing or inconsistent; the message names the file and the fix."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as DuckDB reports it (duckdb_columns().data_type)
    not_null: bool
    comment: str
    accepted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Model:
    schema: str
    name: str
    write: str
    select_sql: str
    table_comment: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    grain: str
    inputs: tuple[str, ...]
    path: Path

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def column_comments(self) -> dict[str, str]:
        return {c.name: c.comment for c in self.columns}

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def not_null(self) -> list[str]:
        return [c.name for c in self.columns if c.not_null]

    @property
    def accepted_values(self) -> dict[str, tuple[str, ...]]:
        return {c.name: c.accepted for c in self.columns if c.accepted}

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.qualified} has no column {name!r}")


def _where(path: Path) -> str:
    try:
        return str(path.relative_to(SQL_DIR.parent.parent))
    except ValueError:
        return str(path)


def _fail(path: Path, problem: str, fix: str) -> ContractError:
    return ContractError(f"{_where(path)}: {problem}; {fix} (model contracts: docs/CONTRACTS.md)")


def _names(path: Path, field: str, text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for n in names:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?", n):
            raise _fail(
                path,
                f"'-- {field}:' lists {n!r}, not a plain (schema.)name",
                "write names separated by commas",
            )
    return names


def parse_model(path: Path) -> Model:
    """One SQL file's contract and SELECT; a missing or malformed header is a ContractError."""
    header: dict[str, str] = {}
    columns: list[Column] = []
    accepted: dict[str, tuple[str, ...]] = {}
    body: list[str] = []
    in_header = True
    for line in path.read_text(encoding="utf-8").splitlines():
        key, colon, text = line[3:].partition(":")
        key, text = key.strip(), text.strip()
        word = key.split(" ", 1)[0]
        if (
            in_header
            and line.startswith("-- ")
            and colon
            and word in (*_HEADER_KEYS, "column", "accepted", "partition")
        ):
            if word == "partition":
                raise _fail(
                    path, "'-- partition:' was renamed", f"write '-- write: {' | '.join(WRITE_STRATEGIES)}'"
                )
            if word == "column":
                columns.append(_parse_column(path, key.removeprefix("column").strip(), text))
            elif word == "accepted":
                column = key.removeprefix("accepted").strip()
                accepted[column] = tuple(v.strip() for v in text.split("|") if v.strip())
            else:
                header[key] = text
            continue
        in_header = False
        body.append(line)
    missing = [k for k in _HEADER_KEYS if not header.get(k)]
    if missing:
        raise _fail(
            path,
            f"no model contract (header line '-- {missing[0]}:' missing)",
            "give the file a header '-- model: schema.name', '-- write: ...', '-- grain: ...', '-- key: ...', "
            "'-- inputs: ...', '-- table: ...' and one '-- column <name> <TYPE>: ...' per column",
        )
    schema, _, name = header["model"].partition(".")
    if schema not in ("staging", "marts") or not _NAME.match(name):
        raise _fail(
            path, f"'-- model: {header['model']}' is not staging.<name> or marts.<name>", "fix the model line"
        )
    if name != path.stem:
        raise _fail(
            path, f"the file holds model {header['model']}", f"name the file {name}.sql or fix '-- model:'"
        )
    if header["write"] not in WRITE_STRATEGIES:
        raise _fail(
            path, f"unknown write strategy {header['write']!r}", f"use one of {', '.join(WRITE_STRATEGIES)}"
        )
    if not columns:
        raise _fail(path, "no '-- column' lines", "declare every column: '-- column <name> <TYPE>: comment'")
    names = [c.name for c in columns]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise _fail(path, f"column {doubled[0]!r} is declared twice", "keep one '-- column' line per column")
    key_columns = _names(path, "key", header["key"])
    for column in (*key_columns, *accepted):
        if column not in names:
            raise _fail(
                path,
                f"'-- key:'/'-- accepted' names column {column!r}, which is not declared",
                "fix the name",
            )
    columns = [Column(c.name, c.type, c.not_null, c.comment, accepted.get(c.name, ())) for c in columns]
    select_sql = "\n".join(body).strip().rstrip(";")
    model = Model(
        schema,
        name,
        header["write"],
        select_sql,
        header["table"],
        tuple(columns),
        key_columns,
        header["grain"],
        _names(path, "inputs", header["inputs"]),
        path,
    )
    _check_inputs(model)
    return model


def _parse_column(path: Path, spec: str, comment: str) -> Column:
    parts = spec.split()
    if len(parts) < 2:
        raise _fail(
            path,
            f"'-- column {spec}:' has no type",
            f"write '-- column {spec or '<name>'} <TYPE>: ...' with the type DuckDB reports (e.g. VARCHAR, BIGINT)",
        )
    name, type_words = parts[0], parts[1:]
    not_null = [w.upper() for w in type_words[-2:]] == ["NOT", "NULL"]
    if not_null:
        type_words = type_words[:-2]
    if not _NAME.match(name) and not name.startswith("_"):
        raise _fail(path, f"column name {name!r} is not a plain identifier", "fix the '-- column' line")
    return Column(name, " ".join(type_words), not_null, comment)


def referenced_tables(model: Model) -> set[str]:
    """Every table the SQL reads: schema-qualified names outside comments, and the tables behind the
    build variables it uses."""
    code = _COMMENT.sub(" ", model.select_sql)
    found = {f"{s.lower()}.{t.lower()}" for s, t in _TABLE_REF.findall(code)} - {model.qualified}
    for pattern, table in _VARIABLE_INPUTS.items():
        if pattern.search(code):
            found.add(table)
    return found


def _check_inputs(model: Model) -> None:
    read, declared = referenced_tables(model), set(model.inputs)
    if read - declared:
        missing = sorted(read - declared)[0]
        raise _fail(
            model.path,
            f"the SQL reads {missing} but '-- inputs:' does not list it",
            f"add {missing} to '-- inputs:'",
        )
    if declared - read:
        extra = sorted(declared - read)[0]
        raise _fail(
            model.path,
            f"'-- inputs:' lists {extra} but the SQL never reads it",
            f"remove {extra} from '-- inputs:'",
        )


def sql_files(sql_dir: Path = SQL_DIR, dirs: Sequence[str] = BUILD_DIRS) -> list[Path]:
    return sorted(p for d in dirs for p in (sql_dir / d).glob("*.sql"))


def load_models(sql_dir: Path = SQL_DIR) -> list[Model]:
    """Every model build_all builds (sql/staging and sql/marts), in build order."""
    models = [parse_model(p) for p in sql_files(sql_dir)]
    return build_order(models)


def load_all_contracts(sql_dir: Path = SQL_DIR) -> list[Model]:
    """The build's models in build order, then the experiment readout (built by its own asset)."""
    build = load_models(sql_dir)
    experiments = [parse_model(p) for p in sql_files(sql_dir, EXPERIMENT_DIRS)]
    for model in experiments:
        unknown = sorted(set(model.inputs) - SOURCE_TABLES - {m.qualified for m in build})
        if unknown:
            raise _unknown(model, unknown[0])
    return [*build, *experiments]


def _unknown(model: Model, table: str) -> ContractError:
    schema, _, name = table.partition(".")
    return _fail(
        model.path,
        f"reads {table}, which no SQL model, lookup or raw table provides",
        f"add transforms/sql/{schema}/{name}.sql with a contract, or fix the name",
    )


def build_order(models: Iterable[Model]) -> list[Model]:
    """A topological order of the models by their inputs (ties: staging before marts, then by name), with
    the ordering rule of CRM_DATE_STRATEGIES. Unknown references, duplicates and cycles fail."""
    by_name: dict[str, Model] = {}
    for m in models:
        if m.qualified in by_name:
            raise _fail(
                m.path,
                f"model {m.qualified} is also declared in {_where(by_name[m.qualified].path)}",
                "keep one",
            )
        by_name[m.qualified] = m
    needs: dict[str, set[str]] = {}
    for m in by_name.values():
        deps = set()
        for table in m.inputs:
            if table in by_name:
                deps.add(table)
            elif table not in SOURCE_TABLES:
                raise _unknown(m, table)
        if m.write in CRM_DATE_STRATEGIES:
            deps |= {
                other.qualified
                for other in by_name.values()
                if other.write in CRM_KEYED_STRATEGIES or other.qualified in CRM_SCOPE_TABLES
            }
        needs[m.qualified] = deps
    waiting = {name: set(deps) for name, deps in needs.items()}
    ready = [_rank(by_name[n]) for n, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[Model] = []
    while ready:
        _, _, name = heapq.heappop(ready)
        order.append(by_name[name])
        for other, deps in waiting.items():
            if name in deps:
                deps.discard(name)
                if not deps:
                    heapq.heappush(ready, _rank(by_name[other]))
    if len(order) < len(by_name):
        left = {n for n in by_name if by_name[n] not in order}
        cycle = _a_cycle(left, needs)
        first = by_name[cycle[0]]
        raise _fail(
            first.path,
            f"the models' inputs form a cycle: {' -> '.join([*cycle, cycle[0]])}",
            "a model cannot read, directly or through others, a table built after it: remove one input",
        )
    return order


def _rank(model: Model) -> tuple[int, str, str]:
    return (0 if model.schema == "staging" else 1, model.name, model.qualified)


def _a_cycle(left: set[str], needs: dict[str, set[str]]) -> list[str]:
    path: list[str] = []
    node = min(left)
    while node not in path:
        path.append(node)
        node = min(d for d in needs[node] if d in left)
    return path[path.index(node) :]
