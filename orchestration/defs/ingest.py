"""Ingest group: one asset per raw table.

Partitioning: one daily partition = one property-local day (STEPWISE_TIME_ZONE) for *every*
configured GA4 property and the HubSpot portal. Properties are not a partition dimension: a
daily run fetches each property's report for the day range in one request per spec, and the raw
loader replaces each (property, date) slice on its own, so adding a property only needs a backfill.
Backfills run as a single run over the whole range (BackfillPolicy.single_run), which costs one GA4
request per spec and property instead of one per day.

With an accounts file (STEPWISE_ACCOUNTS), every asset above exists once per account (a GA4 property and
the HubSpot portal paired with it), keyed raw/<label>/<table>, partitioned by that property's own local
days (a DailyPartitionsDefinition in its reporting zone), and run by the account's own job and schedule
(jobs.py): one account's failure, backfill or late day never touches another's. Each GA4 step first checks
the custom reports against the property's metadata and the property's reporting zone against the file,
before any report request. Custom reports land in raw.ga4_custom_<name> (an asset per account each).

HubSpot objects are incremental: a partition fetches the records whose last modification falls in
that day (UTC instants of the local day) and upserts them by (portal_id, id); the first sync of a
portal fetches everything modified before the end of the range. The window starts no later than the
data cursor (the largest last-modified instant already loaded for the portal), and the connector
re-reads an overlap window before it (HUBSPOT_INCREMENTAL_OVERLAP_SECONDS, default 300): HubSpot's
search index lags edits, so a record edited just before a previous run's cut is read by the next run
whatever partition it materialises. The upsert makes the re-read idempotent.

Beside this module: ``ingest_accounts.py`` holds the accounts (partitions, keys, tags, per-account
connections and checks), ``ingest_steps.py`` the helpers every step shares (partition dates, failures,
request-log totals).
"""

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import dagster as dg

from connectors.ga4 import Ga4ConfigError, default_report_specs, plan_windows
from connectors.hubspot import HubSpotConfigError
from orchestration import ingest_writes
from orchestration.accounts import Ga4Property
from orchestration.connections import Ga4Resource, HubSpotResource, data_source_label
from orchestration.defs.ingest_accounts import (
    ACCOUNT_DAILY,
    ACCOUNTS,
    PER_ACCOUNT,
    account_ga4,
    account_hubspot,
    account_tags,
    check_account_ga4,
    raw_key,
    record_portal,
)
from orchestration.defs.ingest_steps import (
    clear_failure,
    ga4_time_zone,
    no_table_metadata,
    partition_dates,
    partition_label,
    request_metadata,
    warn_if_sandbox,
)
from orchestration.model_lineage import load_model_config
from orchestration.settings import (
    DAILY,
    DUCKDB_POOL,
    OWNERS,
    StepwiseConfigError,
)
from orchestration.table_meta import table_exists, table_metadata
from orchestration.warehouse import WarehouseResource
from transforms import raw_load
from transforms.catalog import ConfigError

INGEST_GROUP = "ingest"
# Problems the user fixes in a file or the environment: reported as they are, without a traceback.
CONFIG_ERRORS = (StepwiseConfigError, ConfigError, Ga4ConfigError, HubSpotConfigError)
GA4_KINDS = {"ga4", "duckdb"}
HUBSPOT_KINDS = {"hubspot", "duckdb"}
HUBSPOT_OBJECTS = ("contacts", "companies", "deals")
SINGLE_RUN = dg.BackfillPolicy.single_run()


# --- GA4 ------------------------------------------------------------------------------------------


def _ga4_specs() -> list[Any]:
    return list(default_report_specs())


def ga4_quality_check_name() -> str:
    return "no_thresholding_or_other_row"


def build_ga4_asset(spec: Any, account: Ga4Property | None = None) -> dg.AssetsDefinition:
    table = f"ga4_{spec.name}"
    key = raw_key(table, account)
    partitions = DAILY if account is None else ACCOUNT_DAILY[account.label]
    whose = (
        "every configured property"
        if account is None
        else f"GA4 property {account.property_id} ('{account.label}', days in {account.time_zone})"
    )
    dims = ", ".join(spec.dimensions)
    mets = ", ".join(spec.metrics)

    @dg.asset(
        key=key,
        group_name=INGEST_GROUP,
        kinds=GA4_KINDS,
        owners=OWNERS,
        pool=DUCKDB_POOL,
        partitions_def=partitions,
        backfill_policy=SINGLE_RUN,
        tags=account_tags(account),
        description=(
            f"GA4 report `{spec.name}` (dimensions: {dims}; metrics: {mets}) for {whose}, "
            f"one slice per (property, date), with GA4's thresholding / '(other)' / sampling flags."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                ga4_quality_check_name(),
                asset=key,
                description="WARN when a loaded day was subject to thresholding or lost rows to '(other)'.",
            )
        ],
        metadata={"dagster/table_name": f"stepwise.raw.{table}", "ga4_report": spec.name},
    )
    def ga4_report_asset(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        ga4: Ga4Resource,
    ) -> dg.MaterializeResult:
        start, end = partition_dates(context)
        warn_if_sandbox(context, ga4)
        try:
            warehouse.check_config()
            catalog, _mapping = load_model_config()
            source = ga4 if account is None else account_ga4(ga4, account)
            client = source.make_client(run_id=context.run.run_id)
            zones: dict[str, str] = {}
            if account is not None:
                zones[account.property_id] = check_account_ga4(client, account, spec, end)
            else:
                client.validate([spec])
            for property_id in source.property_id_list():
                catalog.check_ga4_metadata(dimensions=client.metadata(property_id)[0])
            # The partition range, plus the days before it that GA4 may still be revising.
            windows = plan_windows(
                start,
                end,
                lookback_days=ga4.lookback_days,
                earliest=partitions.start.date(),
                mode="incremental",
            )
            fetched: list[tuple[str, Any, list[Any]]] = []
            for property_id in source.property_id_list():
                for window in windows:
                    context.log.info(f"GA4 {spec.name}: property {property_id}, {window} ({window.mode})")
                    batches = list(
                        client.fetch_report(property_id, spec, window.start, window.end, mode=window.mode)
                    )
                    fetched.append((property_id, window, batches))
        except CONFIG_ERRORS as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        except Exception as exc:
            raise clear_failure(exc, "GA4") from exc
        log_entries = list(client.request_log)
        with warehouse.connect() as con:
            for property_id in source.property_id_list():
                zone = zones.get(property_id) or ga4_time_zone(client, property_id)
                raw_load.record_ga4_property(con, property_id, time_zone=zone)
            for property_id, window, batches in fetched:
                ingest_writes.load_ga4_days(
                    con, spec.name, batches, property_id=property_id, start=window.start, end=window.end
                )
            first_replaced = min(w.start for w in windows)
            ingest_writes.append_request_log(con, log_entries, run_id=context.run.run_id)
            flagged = ingest_writes.ga4_flagged_days(
                con, table, first_replaced, end, None if account is None else account.property_id
            )
            meta = (table_metadata if table_exists(con, "raw", table) else no_table_metadata)(
                con,
                "raw",
                table,
                data_source=ga4.data_source(),
                extra={
                    **request_metadata(log_entries),
                    "partition_range": dg.MetadataValue.text(f"{start} .. {end}"),
                    "days_replaced": dg.MetadataValue.text(f"{first_replaced} .. {end} (lookback included)"),
                    "properties": dg.MetadataValue.text(", ".join(sorted({p for p, _, _ in fetched}))),
                    "rows_loaded": dg.MetadataValue.int(sum(b.num_rows for _, _, bs in fetched for b in bs)),
                },
            )
        # Thresholding can withhold every row of a day, so the request log's flags count too.
        for entry in log_entries:
            if entry.get("request") != spec.name or not entry.get("start_date"):
                continue
            window_days = ingest_writes.days(
                dt.date.fromisoformat(str(entry["start_date"])[:10]),
                dt.date.fromisoformat(str(entry["end_date"])[:10]),
            )
            for flag in ingest_writes.GA4_FLAGS:
                if entry.get(flag) and not any(f == flag and d in window_days for d, f in flagged):
                    flagged += [(d, flag) for d in window_days]
        thresholded = sorted({str(d) for d, flag in flagged if flag == "subject_to_thresholding"})
        other_row = sorted({str(d) for d, flag in flagged if flag == "data_loss_from_other_row"})
        sampled = sorted({str(d) for d, flag in flagged if flag == "sampled"})
        if thresholded or other_row or sampled:
            context.log.warning(
                f"GA4 {spec.name}: thresholded days {thresholded or 'none'}, '(other)' row days "
                f"{other_row or 'none'}, sampled days {sampled or 'none'}"
            )
        check = dg.AssetCheckResult(
            check_name=ga4_quality_check_name(),
            passed=not (thresholded or other_row),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "thresholded_days": dg.MetadataValue.json(thresholded),
                "other_row_days": dg.MetadataValue.json(other_row),
                "sampled_days": dg.MetadataValue.json(sampled),
            },
            description="GA4 applied thresholding or folded rows into '(other)' on the listed days"
            if (thresholded or other_row)
            else "no thresholding and no '(other)' row in the loaded days",
        )
        return dg.MaterializeResult(metadata=meta, check_results=[check])

    return ga4_report_asset


# --- HubSpot ---------------------------------------------------------------------------------------


def build_hubspot_object_asset(object_type: str, account: Ga4Property | None = None) -> dg.AssetsDefinition:
    table = f"hubspot_{object_type}"
    paired = None if account is None else ACCOUNTS.portal_for(account.label)

    @dg.asset(
        key=raw_key(table, account),
        group_name=INGEST_GROUP,
        kinds=HUBSPOT_KINDS,
        owners=OWNERS,
        pool=DUCKDB_POOL,
        partitions_def=DAILY if account is None else ACCOUNT_DAILY[account.label],
        backfill_policy=SINGLE_RUN,
        tags=account_tags(account),
        description=(
            f"HubSpot CRM {object_type}, incremental by last modification (a partition = records last "
            f"modified that day), upserted by (portal_id, id); archived and merged records flagged."
        ),
        metadata={"dagster/table_name": f"stepwise.raw.{table}", "hubspot_object": object_type},
    )
    def hubspot_object_asset(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        hubspot: HubSpotResource,
    ) -> dg.MaterializeResult:
        window = context.partition_time_window
        warn_if_sandbox(context, hubspot)
        until = window.end.astimezone(dt.UTC)
        since: dt.datetime | None = window.start.astimezone(dt.UTC)
        try:
            warehouse.check_config()
            load_model_config()
            source = hubspot if paired is None else account_hubspot(hubspot, paired)
            portal = source.portal()
            with warehouse.connect() as con:
                first_sync = not ingest_writes.hubspot_has_rows(con, table, portal)
                data_cursor = None if first_sync else hubspot_data_cursor(con, table, portal)
            since = hubspot_since(since, data_cursor, first_sync)
            mode = "full" if first_sync else "incremental"
            context.log.info(f"HubSpot {object_type}: {mode} sync, modified {since or 'ever'} .. {until}")
            client = source.make_client(run_id=context.run.run_id)
            # Pages stream from the API straight into the upsert's transaction, so memory stays flat
            # on a first full sync of a large portal; a failure mid-stream rolls the whole load back.
            rows_upserted = 0

            def pages() -> Iterator[Any]:
                nonlocal rows_upserted
                for batch in itertools.chain(
                    client.extract(object_type, since=since, until=until),
                    client.extract_archived(object_type),
                ):
                    rows_upserted += batch.num_rows
                    yield batch

            details = None if paired is None else client.account_details()
            with warehouse.connect() as con:
                if paired is not None and details is not None:
                    record_portal(con, details, paired)
                raw_load.upsert_hubspot_objects(
                    con, object_type, portal, pages(), mode, partition_key=partition_label(context)
                )
                log_entries = list(client.request_log)
                ingest_writes.append_request_log(con, log_entries, run_id=context.run.run_id)
                meta = table_metadata(
                    con,
                    "raw",
                    table,
                    data_source=hubspot.data_source(),
                    extra={
                        **request_metadata(log_entries),
                        "sync_mode": dg.MetadataValue.text(mode),
                        "modified_since": dg.MetadataValue.text(str(since) if since else "beginning"),
                        "modified_until": dg.MetadataValue.text(str(until)),
                        "rows_upserted": dg.MetadataValue.int(rows_upserted),
                        "data_cursor": dg.MetadataValue.text(str(data_cursor) if data_cursor else "none"),
                        "overlap_rows": dg.MetadataValue.int(
                            sum(int(e.get("overlap_rows") or 0) for e in log_entries)
                        ),
                    },
                )
        except CONFIG_ERRORS as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        except Exception as exc:
            raise clear_failure(exc, "HubSpot") from exc
        return dg.MaterializeResult(metadata=meta)

    return hubspot_object_asset


def hubspot_since(
    partition_start: dt.datetime | None, data_cursor: dt.datetime | None, first_sync: bool
) -> dt.datetime | None:
    """Where a HubSpot extract starts: None (everything) on a portal's first sync; else the partition's
    start or, when the newest record loaded is older, that data cursor, so that nothing edited after the
    last run's cut is skipped whichever partition runs next (the connector subtracts its overlap window)."""
    if first_sync:
        return None
    if partition_start is None:
        return data_cursor
    if data_cursor is not None and data_cursor < partition_start:
        return data_cursor
    return partition_start


def hubspot_data_cursor(con: Any, table: str, portal: str) -> dt.datetime | None:
    """The largest last-modified instant (``updated_at``) of the live records loaded for the portal."""
    found = con.execute(
        f'SELECT max(updated_at) FROM raw."{table}" WHERE portal_id = ? AND NOT coalesce(archived, false) '
        "AND merged_into IS NULL",
        [portal],
    ).fetchall()[0][0]
    if found is None:
        return None
    if isinstance(found, dt.datetime) and found.tzinfo is None:
        found = found.replace(tzinfo=dt.UTC)
    return found.astimezone(dt.UTC)


def build_hubspot_reference_asset(kind: str, account: Ga4Property | None = None) -> dg.AssetsDefinition:
    table = f"hubspot_{kind}"
    object_types = ("contacts", "deals", "companies") if kind == "properties" else ("deals", "contacts")
    paired = None if account is None else ACCOUNTS.portal_for(account.label)

    @dg.asset(
        key=raw_key(table, account),
        group_name=INGEST_GROUP,
        kinds=HUBSPOT_KINDS,
        owners=OWNERS,
        pool=DUCKDB_POOL,
        tags=account_tags(account),
        description=(
            f"HubSpot {kind} of {', '.join(object_types)} (replaced per portal each run): "
            + (
                "the property names, so lifecycle-stage dates are discovered rather than assumed."
                if kind == "properties"
                else "pipelines and stages with their order and closed/won flags."
            )
        ),
        metadata={"dagster/table_name": f"stepwise.raw.{table}"},
    )
    def hubspot_reference_asset(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        hubspot: HubSpotResource,
    ) -> dg.MaterializeResult:
        warn_if_sandbox(context, hubspot)
        try:
            warehouse.check_config()
            source = hubspot if paired is None else account_hubspot(hubspot, paired)
            portal = source.portal()
            client = source.make_client(run_id=context.run.run_id)
            fetch = client.properties if kind == "properties" else client.pipelines
            batches = [fetch(object_type) for object_type in object_types]
            details = None if paired is None else client.account_details()
        except CONFIG_ERRORS as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        except Exception as exc:
            raise clear_failure(exc, "HubSpot") from exc
        log_entries = list(client.request_log)
        with warehouse.connect() as con:
            if paired is not None and details is not None:
                record_portal(con, details, paired)
            for object_type, batch in zip(object_types, batches, strict=True):
                raw_load.replace_hubspot_metadata(con, kind, portal, [batch], object_type=object_type)
            ingest_writes.append_request_log(con, log_entries, run_id=context.run.run_id)
            meta = table_metadata(
                con, "raw", table, data_source=hubspot.data_source(), extra=request_metadata(log_entries)
            )
        return dg.MaterializeResult(metadata=meta)

    return hubspot_reference_asset


if not PER_ACCOUNT:
    GA4_ASSETS = [build_ga4_asset(spec) for spec in _ga4_specs()]
    HUBSPOT_OBJECT_ASSETS = [build_hubspot_object_asset(o) for o in HUBSPOT_OBJECTS]
    HUBSPOT_REFERENCE_ASSETS = [build_hubspot_reference_asset(k) for k in ("properties", "pipelines")]
else:
    # One of each per account; HubSpot ones only for an account with a paired portal.
    GA4_ASSETS = [
        build_ga4_asset(spec, prop)
        for prop in ACCOUNTS.properties
        for spec in [*_ga4_specs(), *(r.spec for r in ACCOUNTS.reports_for(prop.label))]
    ]
    HUBSPOT_OBJECT_ASSETS = [
        build_hubspot_object_asset(o, prop)
        for prop in ACCOUNTS.properties
        if ACCOUNTS.portal_for(prop.label)
        for o in HUBSPOT_OBJECTS
    ]
    HUBSPOT_REFERENCE_ASSETS = [
        build_hubspot_reference_asset(k, prop)
        for prop in ACCOUNTS.properties
        if ACCOUNTS.portal_for(prop.label)
        for k in ("properties", "pipelines")
    ]
INGEST_ASSETS = [*GA4_ASSETS, *HUBSPOT_OBJECT_ASSETS, *HUBSPOT_REFERENCE_ASSETS]
# Raw table -> the assets that write it (one per account with an accounts file): what the models depend on.
RAW_TABLE_KEYS: dict[str, list[dg.AssetKey]] = {}
for _assets in INGEST_ASSETS:
    for _key in _assets.keys:
        RAW_TABLE_KEYS.setdefault(_key.path[-1], []).append(_key)


def account_ingest_keys(label: str) -> list[dg.AssetKey]:
    """The ingest assets of one account (its GA4 reports, custom ones included, and its portal's objects)."""
    return [k for a in INGEST_ASSETS for k in a.keys if len(k.path) == 3 and k.path[1] == label]


@dg.asset(
    key=["raw", "request_log"],
    group_name=INGEST_GROUP,
    kinds={"duckdb", "python"},
    owners=OWNERS,
    pool=DUCKDB_POOL,
    deps=[a.key for a in INGEST_ASSETS],
    description=(
        "Every API request batch of every ingest run: rows, pages, retries, 429s, time-window splits, "
        "GA4 quality flags and quota tokens used/remaining. Appended by the ingest assets; this asset "
        "reports the totals of the current run."
    ),
    metadata={"dagster/table_name": "stepwise.raw.request_log"},
)
def request_log(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    ga4: Ga4Resource,
    hubspot: HubSpotResource,
) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        if not table_exists(con, "raw", "request_log"):
            raise dg.Failure(description="raw.request_log does not exist: run the ingest assets first")
        this_run = ingest_writes.request_log_entries(con, context.run.run_id)
        meta = table_metadata(
            con,
            "raw",
            "request_log",
            data_source=data_source_label(ga4, hubspot),
            extra={f"run_{k}": v for k, v in request_metadata(this_run).items()},
        )
    return dg.MaterializeResult(metadata=meta)
