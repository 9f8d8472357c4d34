"""The accounts of this code location (the STEPWISE_ACCOUNTS file, or the one-property shorthand) as the
ingest assets use them: each property's own daily partitions, its asset keys and run tags, the GA4 and
HubSpot connections narrowed to one account, and the checks an account's GA4 step makes before any report.

Apart from ``ingest.py`` so the asset factories there read as the steps they run, and the per-account
rules (keys, zones, tokens, the portal's record) sit in one place.
"""

import datetime as dt
from typing import Any

import dagster as dg

from connectors.ga4 import Ga4ConfigError
from orchestration.accounts import Accounts, Ga4Property, HubSpotPortal, configured_accounts
from orchestration.connections import Ga4Resource, HubSpotResource
from orchestration.settings import StepwiseConfigError, load_settings, named_secret
from transforms import raw_load

# The accounts of this code location (read at load time, like the partitions): the STEPWISE_ACCOUNTS file,
# or the one-property shorthand, whose assets keep their one-account shape (unprefixed keys, DAILY).
ACCOUNTS: Accounts = configured_accounts()
PER_ACCOUNT = ACCOUNTS.source == "file"


def _account_daily(prop: Ga4Property) -> dg.DailyPartitionsDefinition:
    """The property's own local days: partition windows, backfills and the schedule in its zone."""
    return dg.DailyPartitionsDefinition(
        start_date=load_settings().start_date.isoformat(), timezone=prop.time_zone
    )


ACCOUNT_DAILY: dict[str, dg.DailyPartitionsDefinition] = (
    {p.label: _account_daily(p) for p in ACCOUNTS.properties} if PER_ACCOUNT else {}
)


def raw_key(table: str, account: Ga4Property | None = None) -> dg.AssetKey:
    return dg.AssetKey(["raw", table] if account is None else ["raw", account.label, table])


def account_tags(account: Ga4Property | None) -> dict[str, str]:
    return {} if account is None else {"stepwise/account": account.label}


def account_ga4(ga4: Ga4Resource, account: Ga4Property) -> Ga4Resource:
    """The GA4 connection narrowed to one property: its metadata, zone and quota are its own."""
    return Ga4Resource(
        property_ids=account.property_id,
        credentials_file=ga4.credentials_file,
        api_endpoint=ga4.api_endpoint,
        lookback_days=ga4.lookback_days,
        page_size=ga4.page_size,
    )


def account_hubspot(hubspot: HubSpotResource, portal: HubSpotPortal) -> HubSpotResource:
    """The HubSpot connection of one portal, with the token from the variable the file names."""
    token = named_secret(portal.token_env) if portal.token_env else None
    if token is None:
        raise StepwiseConfigError(
            f"{ACCOUNTS.where(portal, 'hubspot_portals token_env')}: the environment variable "
            f"{portal.token_env} that should hold portal '{portal.label}''s token is not set. Fix: set "
            f"{portal.token_env} to the private app's access token in the environment of the runs"
        )
    return HubSpotResource(access_token=token, portal_id=portal.portal_id, host=hubspot.host)


def record_portal(con: Any, details: dict[str, Any], portal: HubSpotPortal) -> str:
    """Record an account's portal for the build (raw.hubspot_portals): the zone HubSpot's account-info
    (`HubSpotClient.account_details()`) answers, which the build cuts the portal's instants into days
    with, and the GA4 property the file pairs it with. Returns the zone."""
    zone = str(details["timeZone"])
    raw_load.record_hubspot_portal(
        con,
        portal.portal_id,
        time_zone=zone,
        property_id=ACCOUNTS.property(portal.ga4_property).property_id,
        hub_id=None if details.get("portalId") is None else str(details["portalId"]),
        currency_code=details.get("companyCurrency"),
    )
    return zone


def check_account_ga4(client: Any, account: Ga4Property, spec: Any, day: dt.date) -> str:
    """Before any report request of an account's GA4 step: every custom report of the account against the
    property's metadata, then the property's reporting zone against the file. Returns the zone."""
    for report in ACCOUNTS.reports_for(account.label):
        try:
            client.validate([report.spec], source=ACCOUNTS.where(report, "custom_reports"))
        except Ga4ConfigError as exc:
            raise Ga4ConfigError(
                f"{exc}. Fix: list only dimensions and metrics the property's metadata offers "
                "(GA4 Data API getMetadata), or name the report's 'properties'"
            ) from None
    client.validate([spec])
    zone = str(client.reporting_time_zone(account.property_id, min(day, dt.date.today())))
    if zone != account.time_zone:
        raise Ga4ConfigError(
            f"{ACCOUNTS.where(account, 'ga4_properties time_zone')}: the file says property "
            f"{account.property_id} ('{account.label}') reports in {account.time_zone}, GA4 says {zone}. "
            f"Fix: set 'time_zone: {zone}' (GA4 Admin > Property settings > Reporting time zone), then "
            "backfill the account: its days were cut in the wrong zone"
        )
    return zone
