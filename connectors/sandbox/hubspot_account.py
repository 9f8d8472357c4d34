"""The fake HubSpot account-information endpoint: ``GET /account-info/v3/details``.

HubSpot answers it for any valid token with the portal's settings (shape as documented for
``/account-info/v3/details`` and its date-versioned twin ``/account-info/2026-03/details``)::

    {"portalId": 2345001, "accountType": "STANDARD", "timeZone": "America/New_York",
     "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "-05:00",
     "utcOffsetMilliseconds": -18000000, "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"}

A client reads the portal's time zone from it (HubSpot's reports cut days in that zone; CRM instants are
UTC). The sandbox serves IANA zone names; ``utcOffset`` is the zone's offset at the server clock's now.
The request passes the portal's auth and general rate bucket like every other call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from connectors.sandbox.server import ApiRequest, ApiResponse, Route, SandboxContext

DEFAULT_PORTAL_ID = 1234567  # the single-store sandbox's portal


@dataclass
class HubSpotAccount:
    """A portal's account settings (``HubSpotSandboxConfig.account``)."""

    portal_id: int = DEFAULT_PORTAL_ID
    time_zone: str | None = None  # None: the store's time zone
    company_currency: str = "USD"
    additional_currencies: list[str] = field(default_factory=list)
    ui_domain: str = "app.hubspot.com"
    data_hosting_location: str = "na1"
    account_type: str = "STANDARD"


def _offset_text(offset: dt.timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def account_details(req: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    from connectors.sandbox import hubspot_api  # imported here: hubspot_api imports this module

    error, headers = hubspot_api._guard(req, ctx, "general")
    if error is not None:
        return error
    account: HubSpotAccount = getattr(hubspot_api._cfg(ctx), "account", None) or HubSpotAccount()
    zone = account.time_zone or str(getattr(ctx.store, "time_zone", "America/New_York"))
    offset = dt.datetime.fromtimestamp(ctx.clock(), ZoneInfo(zone)).utcoffset() or dt.timedelta()
    body = {
        "portalId": account.portal_id,
        "accountType": account.account_type,
        "timeZone": zone,
        "companyCurrency": account.company_currency,
        "additionalCurrencies": list(account.additional_currencies),
        "utcOffset": _offset_text(offset),
        "utcOffsetMilliseconds": int(offset.total_seconds() * 1000),
        "uiDomain": account.ui_domain,
        "dataHostingLocation": account.data_hosting_location,
    }
    return ApiResponse(200, body, headers)


def routes() -> list[Route]:
    return [
        Route(
            "hubspot",
            "GET",
            r"/account-info/(?:v3|\d{4}-\d{2}(?:-beta)?)/details",
            account_details,
            "hubspot:account_details",
        )
    ]
