"""The conversion catalog: load, validate, and hand to the SQL as a small table. The channel mapping
(transforms/channel_mapping.py) is loaded the same way, and its names are importable from here too.

Both files are validated completely before anything is written or fetched. Every problem is raised as
one `ConfigError` whose message names the file, the line, the field and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

# The channel mapping has its own module; its names stay importable from here (see __all__).
from transforms.channel_mapping import (
    DEFAULT_CHANNEL_MAPPING_PATH,
    GA4_DEFAULT_CHANNEL_GROUPS,
    HUBSPOT_ANALYTICS_SOURCES,
    ChannelMapping,
    default_channel_mapping,
    load_channel_mapping,
    parse_channel_mapping,
)
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
    "ConfigError",
    "ConversionDef",
    "Catalog",
    "ChannelMapping",
    "DEFAULT_CATALOG_PATH",
    "DEFAULT_CHANNEL_MAPPING_PATH",
    "GA4_DEFAULT_CHANNEL_GROUPS",
    "HUBSPOT_ANALYTICS_SOURCES",
    "REQUIRED_GA4_DIMENSIONS",
    "load_catalog",
    "load_channel_mapping",
    "default_catalog",
    "default_channel_mapping",
    "parse_channel_mapping",
]

CONFIG_DIR = Path(__file__).resolve().parent / "config"
DEFAULT_CATALOG_PATH = CONFIG_DIR / "conversion_catalog.yaml"

SOURCE_SYSTEMS = ("ga4", "hubspot")
TIERS = ("micro", "macro")
KINDS = ("process_milestone", "secondary_action")
# Which signal types each source system understands, and what the signal then names.
SIGNAL_TYPES: dict[str, dict[str, str]] = {
    "ga4": {"event": "a GA4 event name, e.g. purchase"},
    "hubspot": {
        "lifecycle_stage": "a contact lifecycle stage internal value, e.g. marketingqualifiedlead",
        "deal_won": "a deal pipeline id (e.g. default), or * for every pipeline",
        "form": 'a HubSpot form conversion event name, e.g. "Demo request"',
    },
}
DEFAULT_SIGNAL_TYPE = {"ga4": "event"}
VALUE_REFERENCES = {"event_value": ("ga4", "event"), "deal_amount": ("hubspot", "deal_won")}

CONVERSION_KEYS = (
    "name",
    "source_system",
    "signal_type",
    "signal",
    "tier",
    "kind",
    "funnel_name",
    "funnel_step",
    "value",
    "description",
)
CATALOG_TOP_KEYS = ("version", "conversions")

# GA4 dimensions the warehouse model reads (the report specs of CONTRACTS §3).
REQUIRED_GA4_DIMENSIONS = (
    "date",
    "eventName",
    "sessionDefaultChannelGroup",
    "deviceCategory",
    "country",
    "newVsReturning",
)
_GA4_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")


@dataclass(frozen=True)
class ConversionDef:
    name: str
    source_system: str
    signal_type: str
    signal: str
    tier: str
    kind: str | None
    funnel_name: str | None
    funnel_step: int | None
    value_fixed: float | None
    value_source: str | None
    description: str | None
    line: int


@dataclass(frozen=True)
class Catalog:
    path: str
    conversions: tuple[ConversionDef, ...]

    def by_name(self, name: str) -> ConversionDef:
        for conversion in self.conversions:
            if conversion.name == name:
                return conversion
        raise KeyError(name)

    def to_arrow(self) -> pa.Table:
        """The catalog as rows of `marts.conversion_catalog`: value is the fixed value per conversion,
        value_source says where values come from ('fixed', 'event_value', 'deal_amount' or None)."""
        cols: dict[str, list[Any]] = {
            "conversion_name": [],
            "source_system": [],
            "signal_type": [],
            "signal": [],
            "tier": [],
            "kind": [],
            "funnel_name": [],
            "funnel_step": [],
            "value": [],
            "value_source": [],
            "description": [],
            "catalog_file": [],
            "catalog_line": [],
        }
        for c in self.conversions:
            cols["conversion_name"].append(c.name)
            cols["source_system"].append(c.source_system)
            cols["signal_type"].append(c.signal_type)
            cols["signal"].append(c.signal)
            cols["tier"].append(c.tier)
            cols["kind"].append(c.kind)
            cols["funnel_name"].append(c.funnel_name)
            cols["funnel_step"].append(c.funnel_step)
            cols["value"].append(c.value_fixed)
            cols["value_source"].append(c.value_source or ("fixed" if c.value_fixed is not None else None))
            cols["description"].append(c.description)
            cols["catalog_file"].append(Path(self.path).name)
            cols["catalog_line"].append(c.line)
        schema = pa.schema(
            [
                ("conversion_name", pa.string()),
                ("source_system", pa.string()),
                ("signal_type", pa.string()),
                ("signal", pa.string()),
                ("tier", pa.string()),
                ("kind", pa.string()),
                ("funnel_name", pa.string()),
                ("funnel_step", pa.int32()),
                ("value", pa.float64()),
                ("value_source", pa.string()),
                ("description", pa.string()),
                ("catalog_file", pa.string()),
                ("catalog_line", pa.int32()),
            ]
        )
        return pa.Table.from_pydict(cols, schema=schema)

    def check_ga4_metadata(
        self,
        *,
        event_names: Collection[str] | None = None,
        dimensions: Collection[str] | None = None,
    ) -> None:
        """Check GA4 signals against what the property knows (names from its metadata or its data).

        `event_names`: event names the property has (e.g. distinct eventName of a recent report);
        `dimensions`: API names from getMetadata. Either may be None to skip that check.
        """
        if dimensions is not None:
            known = set(dimensions)
            for dim in REQUIRED_GA4_DIMENSIONS:
                if dim not in known:
                    raise ConfigError(
                        self.path,
                        None,
                        f"the GA4 property's metadata has no dimension '{dim}', which the model needs",
                        "use a GA4 property with standard dimensions (check the property id)",
                    )
        if event_names is not None:
            known_events = set(event_names)
            for c in self.conversions:
                if c.source_system == "ga4" and c.signal not in known_events:
                    raise ConfigError(
                        self.path,
                        c.line,
                        f"conversion '{c.name}': the GA4 property has no event '{c.signal}'"
                        + suggest(c.signal, known_events),
                        "correct the event name in 'signal', or remove the conversion",
                    )


# --------------------------------------------------------------------------------------------- catalog


def _text(path: str, entry: LineMap, key: str, name: str, *, required: bool) -> str | None:
    value = entry.get(key)
    line = entry.key_lines.get(key, entry.line)
    if value is None:
        if required:
            raise ConfigError(path, entry.line, f"conversion '{name}' has no '{key}'", f"add '{key}: ...'")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(
            path,
            line,
            f"conversion '{name}': '{key}' must be text, not {excerpt(value)}",
            f"write '{key}' as text",
        )
    text = str(value).strip()
    if not text:
        raise ConfigError(
            path, line, f"conversion '{name}': '{key}' is empty", f"give '{key}' a value or remove it"
        )
    return text


def _parse_conversion(path: str, entry: Any, line: int) -> ConversionDef:
    if not isinstance(entry, LineMap):
        raise ConfigError(
            path, line, "each item of 'conversions' must be a mapping", "write 'name: ...', 'tier: ...' etc."
        )
    label = str(entry.get("name", f"at line {entry.line}"))
    for key in entry:
        if key not in CONVERSION_KEYS:
            raise ConfigError(
                path,
                entry.key_lines[key],
                f"conversion '{label}' has unknown key '{key}'" + suggest(key, CONVERSION_KEYS),
                f"use only {one_of(CONVERSION_KEYS)}",
            )

    def at(key: str) -> int:
        return entry.key_lines.get(key, entry.line)

    name = _text(path, entry, "name", label, required=True)
    assert name is not None
    source = _text(path, entry, "source_system", name, required=True)
    if source not in SOURCE_SYSTEMS:
        raise ConfigError(
            path,
            at("source_system"),
            f"conversion '{name}': source_system '{source}' is not known"
            + suggest(str(source), SOURCE_SYSTEMS),
            f"use one of {one_of(SOURCE_SYSTEMS)}",
        )
    signal_type = _text(path, entry, "signal_type", name, required=False) or DEFAULT_SIGNAL_TYPE.get(source)
    allowed = SIGNAL_TYPES[source]
    if signal_type is None:
        raise ConfigError(
            path,
            entry.line,
            f"conversion '{name}' has no 'signal_type'",
            f"add 'signal_type:' with one of {one_of(allowed)}",
        )
    if signal_type not in allowed:
        raise ConfigError(
            path,
            at("signal_type"),
            f"conversion '{name}': signal_type '{signal_type}' is not known for {source}"
            + suggest(signal_type, allowed),
            f"use one of {one_of(allowed)}",
        )
    signal = _text(path, entry, "signal", name, required=True)
    assert signal is not None
    if source == "ga4" and not _GA4_EVENT_NAME.fullmatch(signal):
        raise ConfigError(
            path,
            at("signal"),
            f"conversion '{name}': '{signal}' is not a valid GA4 event name",
            "use letters, digits and underscores, starting with a letter, at most 40 characters",
        )
    tier = _text(path, entry, "tier", name, required=True)
    if tier not in TIERS:
        raise ConfigError(
            path,
            at("tier"),
            f"conversion '{name}': tier '{tier}' is not known" + suggest(str(tier), TIERS),
            f"use one of {one_of(TIERS)}",
        )
    kind = _text(path, entry, "kind", name, required=False)
    if tier == "macro" and kind is not None:
        raise ConfigError(
            path,
            at("kind"),
            f"conversion '{name}' is a macro conversion but has kind '{kind}'",
            "remove 'kind' (only micro conversions are process milestones or secondary actions), or set 'tier: micro'",
        )
    if tier == "micro":
        if kind is None:
            raise ConfigError(
                path,
                entry.line,
                f"micro conversion '{name}' has no 'kind'",
                f"add 'kind:' with one of {one_of(KINDS)}",
            )
        if kind not in KINDS:
            raise ConfigError(
                path,
                at("kind"),
                f"conversion '{name}': kind '{kind}' is not known" + suggest(kind, KINDS),
                f"use one of {one_of(KINDS)}",
            )
    funnel_name = _text(path, entry, "funnel_name", name, required=False)
    raw_step = entry.get("funnel_step")
    funnel_step: int | None = None
    if raw_step is not None:
        if isinstance(raw_step, bool) or not isinstance(raw_step, int) or raw_step < 1:
            raise ConfigError(
                path,
                at("funnel_step"),
                f"conversion '{name}': funnel_step must be a whole number from 1, not {excerpt(raw_step)}",
                "write e.g. 'funnel_step: 1'",
            )
        funnel_step = raw_step
    if (funnel_name is None) != (funnel_step is None):
        missing = "funnel_step" if funnel_step is None else "funnel_name"
        raise ConfigError(
            path,
            entry.line,
            f"conversion '{name}' has '{'funnel_name' if funnel_step is None else 'funnel_step'}' but no '{missing}'",
            "give both 'funnel_name' and 'funnel_step', or neither",
        )
    value_fixed: float | None = None
    value_source: str | None = None
    raw_value = entry.get("value")
    if raw_value is not None:
        if isinstance(raw_value, str) and raw_value in VALUE_REFERENCES:
            need_source, need_signal_type = VALUE_REFERENCES[raw_value]
            if (source, signal_type) != (need_source, need_signal_type):
                raise ConfigError(
                    path,
                    at("value"),
                    f"conversion '{name}': value '{raw_value}' only applies to {need_source} signal_type '{need_signal_type}'",
                    "use a fixed number, or remove 'value'",
                )
            value_source = raw_value
        elif isinstance(raw_value, int | float) and not isinstance(raw_value, bool) and raw_value >= 0:
            value_fixed = float(raw_value)
        else:
            raise ConfigError(
                path,
                at("value"),
                f"conversion '{name}': value {excerpt(raw_value)} is not understood",
                f"use a number >= 0 (value per conversion) or one of {one_of(VALUE_REFERENCES)}",
            )
    description = _text(path, entry, "description", name, required=False)
    return ConversionDef(
        name=name,
        source_system=source,
        signal_type=signal_type,
        signal=signal,
        tier=tier,
        kind=kind,
        funnel_name=funnel_name,
        funnel_step=funnel_step,
        value_fixed=value_fixed,
        value_source=value_source,
        description=description,
        line=entry.line,
    )


def _check_funnels(path: str, conversions: list[ConversionDef]) -> None:
    funnels: dict[str, list[ConversionDef]] = {}
    for c in conversions:
        if c.funnel_name is not None:
            funnels.setdefault(c.funnel_name, []).append(c)
    for funnel_name, steps in funnels.items():
        sources = {c.source_system for c in steps}
        if len(sources) > 1:
            odd = next(c for c in steps if c.source_system != steps[0].source_system)
            raise ConfigError(
                path,
                odd.line,
                f"funnel '{funnel_name}' mixes source systems ({', '.join(sorted(sources))})",
                "keep every step of a funnel in one source system; use channel_funnel_daily for web-to-CRM",
            )
        seen: dict[int, ConversionDef] = {}
        for c in steps:
            assert c.funnel_step is not None
            if c.funnel_step in seen:
                raise ConfigError(
                    path,
                    c.line,
                    f"funnel '{funnel_name}' has two conversions at step {c.funnel_step} "
                    f"('{seen[c.funnel_step].name}' on line {seen[c.funnel_step].line} and '{c.name}')",
                    "give each step of a funnel its own funnel_step number",
                )
            seen[c.funnel_step] = c
        for expected in range(1, max(seen) + 1):
            if expected not in seen:
                after = seen[min(s for s in seen if s > expected)]
                raise ConfigError(
                    path,
                    after.line,
                    f"funnel '{funnel_name}' has no step {expected} (steps are {sorted(seen)})",
                    f"add the missing step {expected}, or renumber the steps from 1 without gaps",
                )


def parse_catalog(path: str | Path, doc: Any) -> Catalog:
    path = str(path)
    top = check_top_level(path, doc, CATALOG_TOP_KEYS, "conversion catalog")
    items = top.get("conversions")
    if not isinstance(items, LineList) or not items:
        raise ConfigError(
            path,
            top.key_lines.get("conversions", 1),
            "'conversions' must be a non-empty list",
            "list at least one conversion",
        )
    conversions: list[ConversionDef] = []
    names: dict[str, ConversionDef] = {}
    signals: dict[tuple[str, str, str], ConversionDef] = {}
    for entry, line in zip(items, items.item_lines, strict=True):
        conversion = _parse_conversion(path, entry, line)
        key = conversion.name.casefold()
        if key in names:
            raise ConfigError(
                path,
                conversion.line,
                f"duplicate conversion name '{conversion.name}' (also on line {names[key].line})",
                "give every conversion its own name",
            )
        names[key] = conversion
        signal_key = (conversion.source_system, conversion.signal_type, conversion.signal)
        if signal_key in signals:
            raise ConfigError(
                path,
                conversion.line,
                f"conversion '{conversion.name}' tracks the same {conversion.source_system} {conversion.signal_type} "
                f"'{conversion.signal}' as '{signals[signal_key].name}' (line {signals[signal_key].line})",
                "track each signal once, or the counts would be doubled",
            )
        signals[signal_key] = conversion
        conversions.append(conversion)
    _check_funnels(path, conversions)
    return Catalog(path=path, conversions=tuple(conversions))


def load_catalog(path: str | Path = DEFAULT_CATALOG_PATH) -> Catalog:
    """Load and validate a conversion catalog; raises one `ConfigError` on the first problem."""
    return parse_catalog(path, load_yaml_with_lines(path))


def default_catalog() -> Catalog:
    return load_catalog(DEFAULT_CATALOG_PATH)
