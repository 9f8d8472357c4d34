"""The accounts file (STEPWISE_ACCOUNTS): GA4 properties, HubSpot portals and custom GA4 reports.

Validated like the conversion catalog, before any API call or write: the first problem is raised as one
`ConfigError` naming the file, the line, the field and the fix (transforms/yaml_lines.py bounds the input:
1 MB, 2,000 entries per list, no aliases, UTF-8). The file holds no secret: a portal names the environment
variable that holds its token (`token_env`), and a value that does not look like a variable name is refused
without being quoted (it may be a pasted token).

Without a file, the single-property settings (STEPWISE_GA4_PROPERTY_IDS, STEPWISE_TIME_ZONE,
HUBSPOT_ACCESS_TOKEN, HUBSPOT_PORTAL_ID, or the sandbox when they are unset) build the same `Accounts`
object (`from_settings`), marked `source="environment"`; the Dagster definitions keep their one-account
shape for it (README, "Many properties and portals").

An account is one GA4 property with the HubSpot portal paired to it (at most one), keyed by the
property's label: the unit that is partitioned, scheduled, backfilled and fails on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.ga4.specs import ReportSpec, custom_report_spec
from transforms.yaml_lines import (
    ConfigError,
    LineList,
    LineMap,
    check_top_level,
    excerpt,
    load_yaml_with_lines,
    one_of,
    suggest,
)

__all__ = [
    "Accounts",
    "CustomReport",
    "Ga4Property",
    "HubSpotPortal",
    "load_accounts",
    "parse_accounts",
]

TOP_KEYS = ("version", "ga4_properties", "hubspot_portals", "custom_reports")
PROPERTY_KEYS = ("id", "label", "time_zone")
PORTAL_KEYS = ("label", "portal_id", "token_env", "ga4_property")
REPORT_KEYS = ("name", "dimensions", "metrics", "filters", "properties")
# Labels become asset keys, job and schedule names: short lower_snake_case.
_LABEL = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)
_PROPERTY_ID = re.compile(r"[0-9]{1,20}", re.ASCII)
_PORTAL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}", re.ASCII)
# Variables Stepwise itself reads: a token must live in a variable of its own.
_RESERVED_ENV = re.compile(r"(STEPWISE_|DAGSTER_|GOOGLE_).*|PATH|HOME|PYTHONPATH", re.ASCII)


@dataclass(frozen=True)
class Ga4Property:
    property_id: str
    label: str
    time_zone: str
    line: int | None = field(default=None, compare=False)
    key_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class HubSpotPortal:
    label: str
    portal_id: str  # the label rows carry in raw.hubspot_* (portal_id)
    token_env: str | None  # the NAME of the variable holding the token; None: the shorthand's token
    ga4_property: str  # the paired property's label
    line: int | None = field(default=None, compare=False)
    key_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class CustomReport:
    spec: ReportSpec  # name custom_<name>: table raw.ga4_custom_<name>
    properties: tuple[str, ...]  # labels of the properties it is requested for
    line: int | None = field(default=None, compare=False)

    @property
    def table(self) -> str:
        return f"ga4_{self.spec.name}"


@dataclass(frozen=True)
class Accounts:
    path: str | None  # None: built from the environment (the shorthand)
    properties: tuple[Ga4Property, ...]
    portals: tuple[HubSpotPortal, ...] = ()
    custom_reports: tuple[CustomReport, ...] = ()
    source: str = "file"  # "file" or "environment"
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(p.label for p in self.properties)

    def property(self, label: str) -> Ga4Property:
        for prop in self.properties:
            if prop.label == label:
                return prop
        raise KeyError(label)

    def portal_for(self, label: str) -> HubSpotPortal | None:
        """The HubSpot portal paired with the property `label`, if any."""
        return next((p for p in self.portals if p.ga4_property == label), None)

    def reports_for(self, label: str) -> tuple[CustomReport, ...]:
        return tuple(r for r in self.custom_reports if label in r.properties)

    def where(self, entry: Ga4Property | HubSpotPortal | CustomReport, field_name: str) -> str:
        """'<file>, line N (field)' for messages about one entry: the field's own line when known."""
        key_lines: dict[str, int] = getattr(entry, "key_lines", {})
        number = key_lines.get(field_name.split()[-1], entry.line)
        line = f", line {number}" if number else ""
        return f"{self.path or 'environment'}{line} ({field_name})"


# --- the shorthand -----------------------------------------------------------------------------


def from_environment(
    property_ids: tuple[str, ...],
    time_zone: str,
    portal_id: str | None,
) -> Accounts:
    """The accounts the single-property settings describe: each property labelled by its id
    (`property_<id>`) in STEPWISE_TIME_ZONE, the one portal (if any) paired with the first property."""
    properties = tuple(Ga4Property(pid, f"property_{pid}", time_zone) for pid in property_ids)
    portals: tuple[HubSpotPortal, ...] = ()
    if portal_id is not None and properties:
        portals = (HubSpotPortal("hubspot", portal_id, None, properties[0].label),)
    return Accounts(None, properties, portals, (), source="environment")


# --- the file ------------------------------------------------------------------------------------


def load_accounts(path: str | Path) -> Accounts:
    """Read and validate an accounts file; raises ConfigError (file, line, field, fix)."""
    return parse_accounts(load_yaml_with_lines(path), str(path))


def _items(path: str, doc: LineMap, key: str, *, required: bool) -> list[tuple[Any, int]]:
    value = doc.get(key)
    line = doc.key_lines.get(key, doc.line)
    if value is None:
        if required:
            raise ConfigError(
                path,
                doc.line,
                f"'{key}' is missing",
                f"list at least one entry under '{key}:' (see examples/accounts.yaml)",
            )
        return []
    if not isinstance(value, LineList):
        raise ConfigError(
            path, line, f"'{key}' must be a list, not {excerpt(value)}", f"write '{key}:' then '- ...' items"
        )
    if required and not value:
        raise ConfigError(path, line, f"'{key}' lists nothing", "list at least one entry")
    return list(zip(value, value.item_lines, strict=True))


def _entry(path: str, item: Any, line: int, what: str, keys: tuple[str, ...]) -> LineMap:
    if not isinstance(item, LineMap):
        raise ConfigError(path, line, f"each item of '{what}' must be a mapping", f"write {one_of(keys)}")
    for key in item:
        if key not in keys:
            raise ConfigError(
                path,
                item.key_lines[key],
                f"{what} entry has unknown field '{excerpt(key)[1:-1] if isinstance(key, str) else excerpt(key)}'"
                + suggest(str(key), keys),
                f"use only {one_of(keys)}",
            )
    return item


def _field(path: str, entry: LineMap, key: str, what: str, pattern: re.Pattern[str], form: str) -> str:
    value = entry.get(key)
    line = entry.key_lines.get(key, entry.line)
    if value is None:
        raise ConfigError(path, entry.line, f"{what} has no '{key}'", f"add '{key}: ...' ({form})")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(path, line, f"{what}: '{key}' must be text, not {excerpt(value)}", f"write {form}")
    text = str(value).strip()
    if not pattern.fullmatch(text):
        raise ConfigError(path, line, f"{what}: '{key}' {excerpt(text)} is not {form}", f"write {form}")
    return text


def _property(path: str, item: Any, line: int) -> Ga4Property:
    entry = _entry(path, item, line, "ga4_properties", PROPERTY_KEYS)
    what = f"GA4 property at line {entry.line}"
    pid = _field(
        path, entry, "id", what, _PROPERTY_ID, "the numeric GA4 property id (Admin > Property settings)"
    )
    what = f"GA4 property {pid}"
    label = _field(path, entry, "label", what, _LABEL, "a label of lower_snake_case, at most 32 characters")
    zone = entry.get("time_zone")
    zone_line = entry.key_lines.get("time_zone", entry.line)
    if not isinstance(zone, str) or not zone.strip():
        raise ConfigError(
            path,
            zone_line,
            f"{what}: 'time_zone' is missing or not text",
            "write the property's reporting time zone as GA4 Admin shows it, e.g. 'time_zone: Europe/Berlin'",
        )
    try:
        ZoneInfo(zone.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            path,
            zone_line,
            f"{what}: time_zone {excerpt(zone)} is not an IANA time zone",
            "write an IANA zone such as America/New_York, Europe/Berlin or Asia/Tokyo",
        ) from None
    return Ga4Property(pid, label, zone.strip(), entry.line, dict(entry.key_lines))


def _portal(path: str, item: Any, line: int, labels: dict[str, Ga4Property]) -> HubSpotPortal:
    entry = _entry(path, item, line, "hubspot_portals", PORTAL_KEYS)
    what = f"HubSpot portal at line {entry.line}"
    label = _field(path, entry, "label", what, _LABEL, "a label of lower_snake_case, at most 32 characters")
    what = f"HubSpot portal '{label}'"
    portal_id = _field(
        path, entry, "portal_id", what, _PORTAL_ID, "your Hub ID, 1 to 64 ASCII letters, digits, - or _"
    )
    token_line = entry.key_lines.get("token_env", entry.line)
    token_env = entry.get("token_env")
    fix = "write the NAME of the environment variable that holds the private app's token, e.g. 'token_env: HUBSPOT_TOKEN_EU'"
    if not isinstance(token_env, str):
        raise ConfigError(path, token_line, f"{what} has no 'token_env' (or it is not text)", fix)
    # Never quoted: a value that is not a variable name may be the token itself.
    if not _ENV_NAME.fullmatch(token_env.strip()):
        raise ConfigError(
            path,
            token_line,
            f"{what}: 'token_env' is not an environment variable name (upper-case letters, digits, _); "
            "the file must never hold the token itself",
            fix,
        )
    if _RESERVED_ENV.fullmatch(token_env.strip()):
        raise ConfigError(
            path,
            token_line,
            f"{what}: 'token_env' {token_env.strip()} is a variable Stepwise or the system uses",
            fix,
        )
    paired = _field(path, entry, "ga4_property", what, _LABEL, "the label of a GA4 property listed above")
    if paired not in labels:
        raise ConfigError(
            path,
            entry.key_lines.get("ga4_property", entry.line),
            f"{what}: ga4_property '{paired}' is not a label under ga4_properties" + suggest(paired, labels),
            f"name one of {one_of(labels)}",
        )
    return HubSpotPortal(label, portal_id, token_env.strip(), paired, entry.line, dict(entry.key_lines))


def _names(path: str, entry: LineMap, key: str, what: str, *, required: bool) -> tuple[str, ...]:
    value = entry.get(key)
    line = entry.key_lines.get(key, entry.line)
    if value is None and not required:
        return ()
    if not isinstance(value, LineList) or (required and not value):
        raise ConfigError(
            path, line, f"{what}: '{key}' must be a list of names", f"write '{key}: [name, ...]'"
        )
    out = []
    for item, item_line in zip(value, value.item_lines, strict=True):
        if not isinstance(item, str) or not item.strip() or len(item) > 200 or not item.isprintable():
            raise ConfigError(path, item_line, f"{what}: '{key}' lists {excerpt(item)}", "list names as text")
        out.append(item.strip())
    return tuple(out)


def _custom_report(path: str, item: Any, line: int, labels: dict[str, Ga4Property]) -> CustomReport:
    entry = _entry(path, item, line, "custom_reports", REPORT_KEYS)
    what = f"custom report at line {entry.line}"
    name = _field(
        path,
        entry,
        "name",
        what,
        re.compile(r"[a-z][a-z0-9_]{0,40}", re.ASCII),
        "lower_snake_case, at most 41 characters",
    )
    what = f"custom report '{name}'"
    dims = _names(path, entry, "dimensions", what, required=True)
    mets = _names(path, entry, "metrics", what, required=True)
    filters_value = entry.get("filters")
    filters: dict[str, tuple[str, ...]] = {}
    if filters_value is not None:
        fline = entry.key_lines.get("filters", entry.line)
        if not isinstance(filters_value, LineMap):
            raise ConfigError(
                path,
                fline,
                f"{what}: 'filters' must map a dimension to the values to keep",
                "write 'filters: {deviceCategory: [mobile]}'",
            )
        for dim, values in filters_value.items():
            vline = filters_value.key_lines.get(dim, fline)
            if isinstance(values, str | int) and not isinstance(values, bool):
                values = [values]
            if not isinstance(values, list) or not all(
                isinstance(v, str | int) and not isinstance(v, bool) for v in values
            ):
                raise ConfigError(
                    path,
                    vline,
                    f"{what}: filter on {excerpt(dim)} must list values as text",
                    "write e.g. '[mobile, tablet]'",
                )
            filters[str(dim)] = tuple(str(v) for v in values)
    props = _names(path, entry, "properties", what, required=False) or tuple(labels)
    for label in props:
        if label not in labels:
            raise ConfigError(
                path,
                entry.key_lines.get("properties", entry.line),
                f"{what}: property '{excerpt(label)[1:-1]}' is not a label under ga4_properties"
                + suggest(label, labels),
                f"name labels among {one_of(labels)}, or leave 'properties' out for all",
            )
    spec = custom_report_spec(name, dims, mets, filters)
    problems = spec.problems(f"{what}")
    if problems:
        first = problems[0].split(": ", 2)[-1]
        field_name = "dimensions" if "dimension" in first else "metrics" if "metric" in first else "name"
        raise ConfigError(
            path,
            entry.key_lines.get(field_name, entry.line),
            f"{what}: {first}",
            "keep 'date' among the dimensions, at most 9 dimensions and 10 metrics, each listed once",
        )
    return CustomReport(spec, props, entry.line)


def _unique(path: str, items: list[Any], key: Any, what: str) -> None:
    seen: dict[str, int | None] = {}
    for item in items:
        value = key(item)
        if value in seen:
            raise ConfigError(
                path,
                item.line,
                f"{what} '{value}' is listed twice (first on line {seen[value]})",
                "list it once",
            )
        seen[value] = item.line


def parse_accounts(doc: Any, path: str) -> Accounts:
    doc = check_top_level(path, doc, TOP_KEYS, "accounts file")
    properties = [
        _property(path, item, line) for item, line in _items(path, doc, "ga4_properties", required=True)
    ]
    _unique(path, properties, lambda p: p.property_id, "GA4 property id")
    _unique(path, properties, lambda p: p.label, "label")
    labels = {p.label: p for p in properties}
    portals = [
        _portal(path, item, line, labels)
        for item, line in _items(path, doc, "hubspot_portals", required=False)
    ]
    _unique(path, portals, lambda p: p.label, "HubSpot portal label")
    _unique(path, portals, lambda p: p.portal_id, "HubSpot portal_id")
    _unique(path, portals, lambda p: p.ga4_property, "ga4_property (one portal per GA4 property)")
    clash = sorted(set(labels) & {p.label for p in portals})
    if clash:
        portal = next(p for p in portals if p.label == clash[0])
        raise ConfigError(
            path,
            portal.line,
            f"label '{clash[0]}' names both a GA4 property and a HubSpot portal",
            "give each its own label",
        )
    reports = [
        _custom_report(path, item, line, labels)
        for item, line in _items(path, doc, "custom_reports", required=False)
    ]
    _unique(path, reports, lambda r: r.spec.name, "custom report name")
    return Accounts(
        path, tuple(properties), tuple(portals), tuple(reports), source="file", lines=dict(doc.key_lines)
    )


# --- what the settings configure -------------------------------------------------------------------

SANDBOX_PROPERTY_ID = "123456789"  # the built-in sandbox's property (orchestration/connections.py)


def configured_accounts(settings: Any = None) -> Accounts:
    """The accounts of this deployment: the STEPWISE_ACCOUNTS file, or the shorthand's (the sandbox's
    property and portal when no credentials are set). Raises ConfigError / StepwiseConfigError."""
    from orchestration.settings import load_settings, resolve_path

    settings = settings or load_settings()
    if settings.accounts_path:
        return load_accounts(resolve_path(settings.accounts_path))
    ids = settings.ga4_property_ids or (SANDBOX_PROPERTY_ID,)
    portal = "sandbox" if settings.hubspot_is_sandbox else settings.hubspot_portal_id
    return from_environment(tuple(ids), settings.time_zone, portal)
