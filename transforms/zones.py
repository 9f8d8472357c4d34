"""Several GA4 properties and HubSpot portals in one warehouse: each portal's days in its own time zone,
each portal's rows next to its own property's.

GA4 rows arrive already cut into each property's local days. HubSpot sends UTC instants; the build cuts
them with ``sw_portal_date(portal_id, utc_ts)`` in the portal's zone, recorded by the ingest in
``raw.hubspot_portals`` (``transforms.raw_load.record_hubspot_portal``: the zone HubSpot's
``/account-info/v3/details`` answers, and the GA4 property the accounts configuration pairs the portal
with). ``sw_portal_property(portal_id)`` names that property, and ``sw_property_portal(property_id)`` the
one portal paired with a property (NULL for a web-only property), so marts that put web and CRM figures
side by side (``channel_funnel_daily``, ``funnel_daily``) join a portal's days to its own property's days,
never to another zone's.

One property (the single-account setup, the demo): a portal without a record takes the property's zone
and is paired with it, and ``sw_portal_date`` is exactly ``sw_local_date``, so nothing changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb

__all__ = ["AccountZones", "ZoneError", "resolve_account_zones", "set_zone_macros"]


class ZoneError(ValueError):
    """The portals' or properties' time zones do not determine every day (message names the fix)."""


@dataclass(frozen=True)
class AccountZones:
    """What the build knows about the accounts' zones and pairings."""

    default_zone: str  # sw_time_zone: the one reporting zone, or UTC when the properties use several
    property_zones: dict[str, str] = field(default_factory=dict)  # raw.ga4_properties
    portal_zones: dict[str, str] = field(default_factory=dict)  # raw.hubspot_portals
    portal_properties: dict[str, str] = field(default_factory=dict)  # recorded pairs + implied ones
    several: bool = False  # the properties use more than one zone (no single reporting zone)

    @property
    def per_portal(self) -> bool:
        """Whether any portal's days are cut in a zone other than the default one."""
        return self.several or any(z != self.default_zone for z in self.portal_zones.values())

    def property_portals(self) -> dict[str, str]:
        """Property -> its one paired portal (properties with several portals map to none)."""
        counts: dict[str, list[str]] = {}
        for portal, prop in self.portal_properties.items():
            counts.setdefault(prop, []).append(portal)
        return {prop: portals[0] for prop, portals in counts.items() if len(portals) == 1}

    def state_label(self) -> str:
        """What staging.build_state.time_zone records: the zone, or every portal's zone when they differ."""
        if not self.per_portal:
            return self.default_zone
        return "per portal: " + ", ".join(f"{p}={z}" for p, z in sorted(self.portal_zones.items()))

    def fingerprint(self) -> str:
        """What a change of forces a full build (the zone alone for the single-account setup)."""
        if not self.portal_zones and len(set(self.portal_properties.values())) <= 1:
            return self.default_zone
        return json.dumps(
            {
                "default": self.default_zone,
                "portals": sorted(self.portal_zones.items()),
                "pairs": sorted(self.portal_properties.items()),
            }
        )


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'raw' AND table_name = ?",
            [table],
        ).fetchall()[0][0]
    )


def _known_zone(con: duckdb.DuckDBPyConnection, zone: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [zone]).fetchall()[0][0]
    )


def resolve_account_zones(con: duckdb.DuckDBPyConnection, time_zone: str | None) -> AccountZones:
    """Read raw.ga4_properties and raw.hubspot_portals; raise ZoneError when a day cannot be placed.

    ``time_zone`` (build_all's argument) is the zone of every portal without a record; without it, the
    properties' one zone is, and when they use several, every portal with HubSpot rows must be recorded.
    """
    property_zones: dict[str, str] = {}
    if _exists(con, "ga4_properties"):
        property_zones = {
            str(p): str(z)
            for p, z in con.execute(
                "SELECT property_id, time_zone FROM raw.ga4_properties ORDER BY 1"
            ).fetchall()
        }
    portal_zones: dict[str, str] = {}
    recorded_pairs: dict[str, str] = {}
    if _exists(con, "hubspot_portals"):
        for portal, zone, prop in con.execute(
            "SELECT portal_id, time_zone, property_id FROM raw.hubspot_portals ORDER BY 1"
        ).fetchall():
            portal_zones[str(portal)] = str(zone)
            if prop is not None:
                recorded_pairs[str(portal)] = str(prop)
    for portal, zone in portal_zones.items():
        if not _known_zone(con, zone):
            raise ZoneError(
                f"raw.hubspot_portals: portal {portal!r} has time zone {zone!r}, not an IANA time zone name; "
                "record it again with transforms.raw_load.record_hubspot_portal(..., time_zone='Area/City')"
            )

    zones = sorted(set(property_zones.values()))
    several = False
    if time_zone is not None:
        default = time_zone
    elif not property_zones:
        raise ZoneError(
            "no reporting time zone: pass build_all(..., time_zone='Area/City') or record the GA4 property's "
            "time zone with transforms.raw_load.record_ga4_property() before building"
        )
    elif len(zones) == 1:
        default = zones[0]
    else:
        several, default = True, "UTC"
        missing = sorted(_raw_portals(con) - set(portal_zones))
        if missing:
            raise ZoneError(
                f"the GA4 properties in raw.ga4_properties use {len(zones)} time zones ({', '.join(zones)}) and "
                f"HubSpot portal {missing[0]!r} has no recorded time zone: record each portal with "
                "transforms.raw_load.record_hubspot_portal(con, portal_id, time_zone=..., property_id=...) "
                "or pass build_all(..., time_zone=...) to cut every portal's days in one zone"
            )
    if not _known_zone(con, default):
        raise ZoneError(f"time zone {default!r} is not an IANA time zone name (e.g. 'America/New_York')")

    pairs = dict(recorded_pairs)
    known_properties = set(property_zones) | _raw_properties(con)
    if len(known_properties) == 1:
        # One property: every portal's rows stand next to it (the single-account setup).
        only = next(iter(known_properties))
        for portal in _raw_portals(con) | set(portal_zones):
            pairs.setdefault(portal, only)
    return AccountZones(default, property_zones, portal_zones, pairs, several)


def _raw_portals(con: duckdb.DuckDBPyConnection) -> set[str]:
    found: set[str] = set()
    for table in ("hubspot_contacts", "hubspot_deals"):
        if _exists(con, table):
            found |= {
                str(r[0]) for r in con.execute(f"SELECT DISTINCT portal_id FROM raw.{table}").fetchall()
            }
    return found


def _raw_properties(con: duckdb.DuckDBPyConnection) -> set[str]:
    if not _exists(con, "ga4_web_sessions"):
        return set()
    return {
        str(r[0]) for r in con.execute("SELECT DISTINCT property_id FROM raw.ga4_web_sessions").fetchall()
    }


def set_zone_macros(con: duckdb.DuckDBPyConnection, zones: AccountZones) -> None:
    """Define sw_portal_date, sw_portal_property and sw_property_portal (after the build's MACROS_SQL and
    ``SET VARIABLE sw_time_zone``)."""
    pairs = sorted(zones.portal_properties.items())
    reverse = sorted(zones.property_portals().items())
    con.execute(
        "SET VARIABLE sw_portal_properties = map(?::VARCHAR[], ?::VARCHAR[])",
        [[p for p, _ in pairs], [q for _, q in pairs]],
    )
    con.execute(
        "SET VARIABLE sw_property_portals = map(?::VARCHAR[], ?::VARCHAR[])",
        [[p for p, _ in reverse], [q for _, q in reverse]],
    )
    con.execute(
        "CREATE OR REPLACE TEMP MACRO sw_portal_property(p) AS getvariable('sw_portal_properties')[p];"
        "CREATE OR REPLACE TEMP MACRO sw_property_portal(p) AS getvariable('sw_property_portals')[p];"
    )
    if not zones.per_portal:
        # Every portal in the one reporting zone: the same expression as before, so the same bits and speed.
        con.execute("CREATE OR REPLACE TEMP MACRO sw_portal_date(p, utc_ts) AS sw_local_date(utc_ts)")
        return
    portal_zones = sorted(zones.portal_zones.items())
    con.execute(
        "SET VARIABLE sw_portal_zones = map(?::VARCHAR[], ?::VARCHAR[])",
        [[p for p, _ in portal_zones], [z for _, z in portal_zones]],
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP MACRO sw_portal_date(p, utc_ts) AS CAST(timezone(
            coalesce(getvariable('sw_portal_zones')[p], getvariable('sw_time_zone')), timezone('UTC', utc_ts)
        ) AS DATE)
        """
    )
