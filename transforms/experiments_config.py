"""The experiments file (transforms/config/experiments.yaml): load, validate, resolve each window.

Validated completely before any API call, in the conversion catalog's style: the first problem is raised as
one `ConfigError` naming the file, the line, the field and the fix. Conversions are named from the catalog
(they must be GA4 events there, of the tier they are listed under).

How variants are identified: GA4's documented third-party testing integration sends `experience_impression`
with `exp_variant_string` = TOOL-EXPERIMENT-VARIANT and creates ONE GA4 AUDIENCE PER VARIANT on that
parameter; each variant here names its audience (`audience`, the audience's display name, reported by the
Data API's `audienceName` dimension). Why audiences and not the event parameter: README, "Experiments".
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transforms.catalog import Catalog
from transforms.yaml_lines import (
    ConfigError,
    LineList,
    LineMap,
    check_top_level,
    load_yaml_with_lines,
    one_of,
    suggest,
)

__all__ = [
    "DEFAULT_EXPERIMENTS_PATH",
    "Experiment",
    "ExperimentsConfig",
    "Variant",
    "load_experiments",
    "parse_experiments",
    "resolve_date",
]

DEFAULT_EXPERIMENTS_PATH = Path(__file__).resolve().parent / "config" / "experiments.yaml"
TOP_KEYS = ("version", "experiments")
EXPERIMENT_KEYS = (
    "name",
    "description",
    "identified_by",
    "variants",
    "control",
    "start_date",
    "end_date",
    "micro",
    "macro",
)
VARIANT_KEYS = ("name", "audience", "planned_share")
IDENTIFIED_BY = ("audience",)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_RELATIVE = re.compile(r"^(\d{1,4})daysAgo$")
SHARE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Variant:
    name: str
    audience: str
    planned_share: float
    line: int


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str | None
    variants: tuple[Variant, ...]
    control: str
    start_date: str  # YYYY-MM-DD, NdaysAgo, yesterday or today (GA4's own date forms)
    end_date: str | None
    micro: tuple[str, ...]  # catalog conversion names
    macro: tuple[str, ...]
    line: int

    def window(self, today: dt.date) -> tuple[dt.date, dt.date] | None:
        """The experiment's window as of ``today`` (the day after the last complete day): from its start to
        its end or yesterday, whichever is first. None while it has not started."""
        start = resolve_date(self.start_date, today)
        last = today - dt.timedelta(days=1)
        end = min(resolve_date(self.end_date, today), last) if self.end_date else last
        return (start, end) if start <= end else None


@dataclass(frozen=True)
class ExperimentsConfig:
    path: str
    experiments: tuple[Experiment, ...]


def resolve_date(value: str, today: dt.date) -> dt.date:
    """GA4's date forms: YYYY-MM-DD, NdaysAgo, yesterday, today (relative to ``today``)."""
    if value == "today":
        return today
    if value == "yesterday":
        return today - dt.timedelta(days=1)
    match = _RELATIVE.match(value)
    if match:
        return today - dt.timedelta(days=int(match.group(1)))
    return dt.date.fromisoformat(value)


def _date_text(path: str, entry: LineMap, key: str, label: str, *, required: bool) -> str | None:
    value = entry.get(key)
    line = entry.key_lines.get(key, entry.line)
    if value is None:
        if required:
            raise ConfigError(
                path,
                entry.line,
                f"experiment '{label}' has no '{key}'",
                f"add '{key}: YYYY-MM-DD' (or NdaysAgo)",
            )
        return None
    text = value.isoformat() if isinstance(value, dt.date) else str(value).strip()
    if text in ("today", "yesterday") or _RELATIVE.match(text):
        return text
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            path,
            line,
            f"experiment '{label}': '{key}' is {value!r}, not a date",
            "write YYYY-MM-DD, or GA4's NdaysAgo / yesterday / today",
        ) from None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ConfigError(
            path, line, f"experiment '{label}': '{key}' {text!r} is not YYYY-MM-DD", "write YYYY-MM-DD"
        )
    return text


def _conversions(path: str, entry: LineMap, key: str, label: str, catalog: Catalog | None) -> tuple[str, ...]:
    value = entry.get(key)
    line = entry.key_lines.get(key, entry.line)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(
            path,
            line,
            f"experiment '{label}': '{key}' must list at least one {key} conversion of the catalog",
            f"write e.g. '{key}: [{'add_to_cart' if key == 'micro' else 'purchase'}]'",
        )
    names: list[str] = []
    lines = value.item_lines if isinstance(value, LineList) else [line] * len(value)
    for item, item_line in zip(value, lines, strict=True):
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(
                path, item_line, f"experiment '{label}': '{key}' lists {item!r}", "list conversion names"
            )
        name = item.strip()
        if catalog is not None:
            known = {c.name: c for c in catalog.conversions}
            if name not in known:
                raise ConfigError(
                    path,
                    item_line,
                    f"experiment '{label}': conversion '{name}' is not in the conversion catalog {catalog.path}"
                    + suggest(name, known),
                    "name a conversion of the catalog, or add it there",
                )
            conversion = known[name]
            if conversion.source_system != "ga4" or conversion.signal_type != "event":
                raise ConfigError(
                    path,
                    item_line,
                    f"experiment '{label}': conversion '{name}' is a {conversion.source_system} "
                    f"{conversion.signal_type}; experiments are read from GA4 audiences, so only GA4 events can be read out",
                    "list GA4 event conversions only",
                )
            if conversion.tier != key:
                raise ConfigError(
                    path,
                    item_line,
                    f"experiment '{label}': conversion '{name}' is {conversion.tier} in the catalog, listed under '{key}'",
                    f"move it to '{conversion.tier}'",
                )
        if name in names:
            raise ConfigError(
                path, item_line, f"experiment '{label}': '{name}' is listed twice", "list it once"
            )
        names.append(name)
    return tuple(names)


def _variants(path: str, entry: LineMap, label: str) -> tuple[Variant, ...]:
    items = entry.get("variants")
    line = entry.key_lines.get("variants", entry.line)
    if not isinstance(items, LineList) or len(items) < 2:
        raise ConfigError(
            path,
            line,
            f"experiment '{label}': 'variants' must list at least two variants",
            "list the control and a treatment",
        )
    out: list[Variant] = []
    for item, item_line in zip(items, items.item_lines, strict=True):
        if not isinstance(item, LineMap):
            raise ConfigError(
                path,
                item_line,
                f"experiment '{label}': each variant must be a mapping",
                "write name, audience, planned_share",
            )
        for key in item:
            if key not in VARIANT_KEYS:
                raise ConfigError(
                    path,
                    item.key_lines[key],
                    f"experiment '{label}': variant has unknown key '{key}'" + suggest(key, VARIANT_KEYS),
                    f"use only {one_of(VARIANT_KEYS)}",
                )
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                path,
                item.key_lines.get("name", item.line),
                f"experiment '{label}': variant name {name!r} must be lower_snake_case",
                "name it like 'control' or 'green_button'",
            )
        audience = item.get("audience")
        if not isinstance(audience, str) or not audience.strip():
            raise ConfigError(
                path,
                item.key_lines.get("audience", item.line),
                f"experiment '{label}': variant '{name}' has no 'audience'",
                "give the display name of the GA4 audience your testing tool created for this variant",
            )
        share = item.get("planned_share")
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < float(share) < 1:
            raise ConfigError(
                path,
                item.key_lines.get("planned_share", item.line),
                f"experiment '{label}': variant '{name}' planned_share {share!r} must be a number between 0 and 1",
                "write the share of visitors the tool assigns to it, e.g. 0.5",
            )
        if any(v.name == name for v in out):
            raise ConfigError(
                path, item_line, f"experiment '{label}': variant '{name}' is listed twice", "list it once"
            )
        out.append(Variant(name, audience.strip(), float(share), item_line))
    total = sum(v.planned_share for v in out)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ConfigError(
            path,
            line,
            f"experiment '{label}': planned shares add up to {total:g}, not 1",
            "make the planned shares sum to 1",
        )
    return tuple(out)


def _parse_experiment(path: str, entry: Any, line: int, catalog: Catalog | None) -> Experiment:
    if not isinstance(entry, LineMap):
        raise ConfigError(
            path,
            line,
            "each item of 'experiments' must be a mapping",
            "write 'name: ...', 'variants: ...' etc.",
        )
    label = str(entry.get("name", f"at line {entry.line}"))
    for key in entry:
        if key not in EXPERIMENT_KEYS:
            raise ConfigError(
                path,
                entry.key_lines[key],
                f"experiment '{label}' has unknown key '{key}'" + suggest(key, EXPERIMENT_KEYS),
                f"use only {one_of(EXPERIMENT_KEYS)}",
            )
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            path,
            entry.key_lines.get("name", entry.line),
            f"experiment name {name!r} must be lower_snake_case (it is a value of marts.experiment_readout.experiment)",
            "name it like 'checkout_button'",
        )
    identified_by = entry.get("identified_by", "audience")
    if identified_by not in IDENTIFIED_BY:
        raise ConfigError(
            path,
            entry.key_lines.get("identified_by", entry.line),
            f"experiment '{name}': identified_by {identified_by!r} is not supported",
            f"use {one_of(IDENTIFIED_BY)} (one GA4 audience per variant, as the testing integration creates them)",
        )
    variants = _variants(path, entry, name)
    control = entry.get("control")
    if control not in [v.name for v in variants]:
        raise ConfigError(
            path,
            entry.key_lines.get("control", entry.line),
            f"experiment '{name}': control {control!r} is not one of its variants"
            + suggest(str(control), [v.name for v in variants]),
            f"set 'control' to one of {one_of(v.name for v in variants)}",
        )
    start = _date_text(path, entry, "start_date", name, required=True)
    end = _date_text(path, entry, "end_date", name, required=False)
    assert start is not None
    if (
        end is not None
        and re.fullmatch(r"\d{4}-\d{2}-\d{2}", start)
        and re.fullmatch(r"\d{4}-\d{2}-\d{2}", end)
    ) and dt.date.fromisoformat(end) < dt.date.fromisoformat(start):
        raise ConfigError(
            path,
            entry.key_lines["end_date"],
            f"experiment '{name}': end_date {end} is before start_date {start}",
            "swap or correct the dates",
        )
    description = entry.get("description")
    return Experiment(
        name=name,
        description=str(description) if description is not None else None,
        variants=variants,
        control=str(control),
        start_date=start,
        end_date=end,
        micro=_conversions(path, entry, "micro", name, catalog),
        macro=_conversions(path, entry, "macro", name, catalog),
        line=line,
    )


def parse_experiments(path: str | Path, doc: Any, catalog: Catalog | None = None) -> ExperimentsConfig:
    path = str(path)
    top = check_top_level(path, doc, TOP_KEYS, "experiments file")
    items = top.get("experiments")
    if items is None:
        return ExperimentsConfig(path, ())
    if not isinstance(items, LineList):
        raise ConfigError(
            path,
            top.key_lines.get("experiments", 1),
            "'experiments' must be a list",
            "list experiments, or leave it empty",
        )
    experiments: list[Experiment] = []
    audiences: dict[str, tuple[str, int]] = {}
    for entry, line in zip(items, items.item_lines, strict=True):
        experiment = _parse_experiment(path, entry, line, catalog)
        if any(e.name == experiment.name for e in experiments):
            raise ConfigError(
                path,
                line,
                f"experiment '{experiment.name}' is defined twice",
                "give every experiment its own name",
            )
        for variant in experiment.variants:
            if variant.audience in audiences:
                other, other_line = audiences[variant.audience]
                raise ConfigError(
                    path,
                    variant.line,
                    f"audience '{variant.audience}' is used by {other} (line {other_line}) too",
                    "give each variant its own GA4 audience",
                )
            audiences[variant.audience] = (f"{experiment.name}/{variant.name}", variant.line)
        experiments.append(experiment)
    return ExperimentsConfig(path, tuple(experiments))


def load_experiments(
    path: str | Path = DEFAULT_EXPERIMENTS_PATH, catalog: Catalog | None = None
) -> ExperimentsConfig:
    """Load and validate the experiments file; raises one `ConfigError` on the first problem."""
    return parse_experiments(path, load_yaml_with_lines(path), catalog)
