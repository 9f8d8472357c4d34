"""HubSpot records as Arrow: the batch schemas of CONTRACTS §3, and one page of API records turned into
a batch (merged-away ids as rows of their own, timestamps parsed, properties kept as sorted JSON).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa

from connectors.hubspot.settings import HubSpotResponseError

# A value quoted in an error is cut to this many characters: it comes from a response.
MAX_QUOTED = 40


def quoted(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= MAX_QUOTED else text[:MAX_QUOTED] + "…")


def timestamps(object_type: str, ids: list[str], field: str, values: list[Any]) -> pa.Array:
    """ISO 8601 instants as UTC timestamps; one that does not parse stops the load naming its record."""
    try:
        return pa.array(values, pa.string()).cast(pa.timestamp("ms", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    for record_id, value in zip(ids, values, strict=True):
        if value is None:
            continue
        try:
            pa.array([value], pa.string()).cast(pa.timestamp("ms", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            raise HubSpotResponseError(
                f"HubSpot {object_type} record {quoted(record_id)}: field '{field}' is {quoted(value)}, "
                "not an ISO 8601 timestamp; nothing of this object type was written"
            ) from None
    raise HubSpotResponseError(f"HubSpot {object_type}: field '{field}' holds a value that is not text")


OBJECT_SCHEMA = pa.schema(
    [
        ("portal_id", pa.string()),
        ("id", pa.string()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("updated_at", pa.timestamp("ms", tz="UTC")),
        ("archived", pa.bool_()),
        ("merged_into", pa.string()),
        ("properties", pa.string()),
    ]
)


DEAL_SCHEMA = OBJECT_SCHEMA.append(pa.field("contact_ids", pa.string()))


PROPERTIES_SCHEMA = pa.schema(
    [
        ("portal_id", pa.string()),
        ("object_type", pa.string()),
        ("name", pa.string()),
        ("label", pa.string()),
        ("type", pa.string()),
        ("field_type", pa.string()),
        ("group_name", pa.string()),
    ]
)


PIPELINES_SCHEMA = pa.schema(
    [
        ("portal_id", pa.string()),
        ("object_type", pa.string()),
        ("pipeline_id", pa.string()),
        ("pipeline_label", pa.string()),
        ("stage_id", pa.string()),
        ("stage_label", pa.string()),
        ("display_order", pa.int64()),
        ("is_closed", pa.bool_()),
        ("probability", pa.float64()),
    ]
)


def to_ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def id_key(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (0, value)


def to_batch(object_type: str, portal: str, records: list[dict[str, Any]]) -> pa.RecordBatch:
    """One page of records as a batch of OBJECT_SCHEMA (DEAL_SCHEMA for deals, with their contact ids);
    each id merged into a record becomes a row of its own pointing at the survivor."""
    ids, created, updated, archived, props_json, contacts = [], [], [], [], [], []
    merged_into: list[str | None] = []
    dumps = json.dumps
    for record in records:
        properties = record.get("properties") or {}
        if not isinstance(record.get("id"), str | int) or not str(record["id"]).strip():
            raise HubSpotResponseError(
                f"HubSpot {object_type}: a record has id {quoted(record.get('id'))}, not a record id; "
                "nothing of this object type was written"
            )
        ids.append(str(record["id"]))
        created.append(record.get("createdAt"))
        updated.append(record.get("updatedAt"))
        archived.append(bool(record.get("archived", False)))
        merged_into.append(None)
        # Sorted keys: list and search pages order properties differently; one record, one text.
        props_json.append(dumps(properties, separators=(",", ":"), ensure_ascii=False, sort_keys=True))
        if object_type == "deals":
            assoc = ((record.get("associations") or {}).get("contacts") or {}).get("results") or []
            contacts.append(dumps(sorted({str(a["id"]) for a in assoc}, key=id_key)))
        merged = properties.get("hs_merged_object_ids")
        if merged:
            # Each merged-away id becomes a row of its own pointing at the survivor.
            for loser in str(merged).split(";"):
                loser = loser.strip()
                if not loser or loser == str(record["id"]):
                    continue
                ids.append(loser)
                created.append(None)
                updated.append(record.get("updatedAt"))
                archived.append(True)
                merged_into.append(str(record["id"]))
                props_json.append("{}")
                if object_type == "deals":
                    contacts.append("[]")
    columns = [
        pa.array([portal] * len(ids), pa.string()),
        pa.array(ids, pa.string()),
        timestamps(object_type, ids, "createdAt", created),
        timestamps(object_type, ids, "updatedAt", updated),
        pa.array(archived, pa.bool_()),
        pa.array(merged_into, pa.string()),
        pa.array(props_json, pa.string()),
    ]
    schema = OBJECT_SCHEMA
    if object_type == "deals":
        columns.append(pa.array(contacts, pa.string()))
        schema = DEAL_SCHEMA
    return pa.RecordBatch.from_arrays(columns, schema=schema)
