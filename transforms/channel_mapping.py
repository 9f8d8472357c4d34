"""The channel mapping: which GA4 default channel group each HubSpot original source
(`hs_analytics_source`) counts as, loaded and validated before anything is written or fetched, and
handed to the SQL as a small table. The file is transforms/config/channel_mapping.yaml by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from transforms.yaml_lines import ConfigError, LineMap, check_top_level, load_yaml_with_lines, one_of, suggest

DEFAULT_CHANNEL_MAPPING_PATH = Path(__file__).resolve().parent / "config" / "channel_mapping.yaml"
MAPPING_TOP_KEYS = ("version", "unmapped_channel", "mapping")

# GA4's default channel groups (Admin API "Default Channel Group" definitions, 2024+).
GA4_DEFAULT_CHANNEL_GROUPS = (
    "Affiliates",
    "Audio",
    "Cross-network",
    "Direct",
    "Display",
    "Email",
    "Mobile Push Notifications",
    "Organic Search",
    "Organic Shopping",
    "Organic Social",
    "Organic Video",
    "Paid Other",
    "Paid Search",
    "Paid Shopping",
    "Paid Social",
    "Paid Video",
    "Referral",
    "SMS",
    "Unassigned",
)

# The values HubSpot's hs_analytics_source ("Original source") property can take.
HUBSPOT_ANALYTICS_SOURCES = (
    "AI_REFERRALS",
    "DIRECT_TRAFFIC",
    "EMAIL_MARKETING",
    "OFFLINE",
    "ORGANIC_SEARCH",
    "OTHER_CAMPAIGNS",
    "PAID_SEARCH",
    "PAID_SOCIAL",
    "REFERRALS",
    "SOCIAL_MEDIA",
)


@dataclass(frozen=True)
class ChannelMapping:
    path: str
    mapping: dict[str, str]
    unmapped_channel: str
    lines: dict[str, int] = field(default_factory=dict)

    def to_arrow(self) -> pa.Table:
        sources = list(self.mapping)
        return pa.Table.from_pydict(
            {
                "hs_analytics_source": sources,
                "channel": [self.mapping[s] for s in sources],
                "mapping_line": [self.lines.get(s) for s in sources],
            },
            schema=pa.schema(
                [("hs_analytics_source", pa.string()), ("channel", pa.string()), ("mapping_line", pa.int32())]
            ),
        )


def parse_channel_mapping(path: str | Path, doc: Any) -> ChannelMapping:
    path = str(path)
    top = check_top_level(path, doc, MAPPING_TOP_KEYS, "channel mapping")
    unmapped = top.get("unmapped_channel", "Unassigned")
    if unmapped not in GA4_DEFAULT_CHANNEL_GROUPS:
        raise ConfigError(
            path,
            top.key_lines.get("unmapped_channel"),
            f"unmapped_channel '{unmapped}' is not a GA4 default channel group"
            + suggest(str(unmapped), GA4_DEFAULT_CHANNEL_GROUPS),
            f"use one of {one_of(GA4_DEFAULT_CHANNEL_GROUPS)}",
        )
    mapping = top.get("mapping")
    if not isinstance(mapping, LineMap) or not mapping:
        raise ConfigError(
            path,
            top.key_lines.get("mapping", 1),
            "'mapping' must be a mapping from HubSpot hs_analytics_source values to GA4 channel groups",
            "write e.g. 'mapping: {EMAIL_MARKETING: Email}'",
        )
    result: dict[str, str] = {}
    for source, channel in mapping.items():
        line = mapping.key_lines[source]
        if source not in HUBSPOT_ANALYTICS_SOURCES:
            raise ConfigError(
                path,
                line,
                f"'{source}' is not a HubSpot hs_analytics_source value"
                + suggest(str(source), HUBSPOT_ANALYTICS_SOURCES),
                f"use one of {one_of(HUBSPOT_ANALYTICS_SOURCES)}",
            )
        if channel not in GA4_DEFAULT_CHANNEL_GROUPS:
            raise ConfigError(
                path,
                line,
                f"'{source}' maps to '{channel}', which is not a GA4 default channel group"
                + suggest(str(channel), GA4_DEFAULT_CHANNEL_GROUPS),
                f"use one of {one_of(GA4_DEFAULT_CHANNEL_GROUPS)}",
            )
        result[source] = channel
    return ChannelMapping(path=path, mapping=result, unmapped_channel=unmapped, lines=dict(mapping.key_lines))


def load_channel_mapping(path: str | Path = DEFAULT_CHANNEL_MAPPING_PATH) -> ChannelMapping:
    """Load and validate a channel mapping; raises one `ConfigError` on the first problem."""
    return parse_channel_mapping(path, load_yaml_with_lines(path))


def default_channel_mapping() -> ChannelMapping:
    return load_channel_mapping(DEFAULT_CHANNEL_MAPPING_PATH)
