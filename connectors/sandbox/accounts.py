"""A multi-account sandbox: three GA4 properties in three time zones and two HubSpot portals on one server.

Interface (what tests, benchmarks and the orchestration use)
------------------------------------------------------------
Start it in-process::

    with MultiAccountSandbox(days=30, scale=0.25, end_date="2026-03-31") as sandbox:
        sandbox.base_url                        # http://127.0.0.1:<port>, both APIs
        sandbox.store("234567890")              # the Berlin property's Store
        sandbox.truth("234567890").sessions_by_day()   # its truth, in Europe/Berlin days
        sandbox.portal_store(2345002)           # the store whose contacts portal EU serves (Berlin's)
        sandbox.revoke_property("345678901")    # GA4 403 PERMISSION_DENIED for Tokyo only
        sandbox.revoke_portal(2345001)          # 401 EXPIRED_AUTHENTICATION for portal US's token only

or from the command line, ``python -m connectors.sandbox --accounts multi``, or for the pipeline with
``STEPWISE_SANDBOX_ACCOUNTS=multi`` (orchestration/settings.py; ``get_sandbox()`` then starts this).

The accounts (fixed; ``PROPERTIES`` and ``PORTALS`` below):

========== ======== ================ ====== ============== ========= ===================================
property   label    time zone        seed   sessions/day   lead rate paired portal (token)
========== ======== ================ ====== ============== ========= ===================================
123456789  US store America/New_York seed   2,000          5.5 %     2345001 "US CRM" (sandbox-token-us)
234567890  DE store Europe/Berlin    seed+1 800            8 %       2345002 "EU CRM" (sandbox-token-eu)
345678901  JP store Asia/Tokyo       seed+2 400            3 %       none: web only
========== ======== ================ ====== ============== ========= ===================================

Each property is one independent store (``build_store``) generated in its own zone with its own seed and
size, so its truths differ: traffic volumes, and the planted lead rates (Berlin's visitors leave a lead
about 1.45x as often as New York's, Tokyo's about half as often). With the default seed (7), 90 days and
``scale=1`` the US store IS the single-store demo store (same parameters, same data).

Each portal serves the contacts, deals and companies of its paired property's store, in that property's
time zone (``account-info`` answers it), so per property-local date and channel GA4 ``generate_lead``
== contacts created still holds per pair (CONTRACTS §5.accounts). The portals have their own limits:
US is a Free/Starter private app (100 requests per 10 s, 250,000 a day), EU a Professional one (190 per
10 s, 625,000 a day); both search at 5 per second. Each portal's rate windows, daily count and token
list are its own.

Routing: a GA4 request goes to the context of the property in its path; an unknown or revoked property
gets GA4's 403 PERMISSION_DENIED. A HubSpot request goes to the portal whose token it carries; a
request without a token gets the 401 of a missing credential, an unknown token 401 INVALID_AUTHENTICATION,
a revoked one 401 EXPIRED_AUTHENTICATION (the portal's own ``expired_tokens``). Per-account settings are
live: ``sandbox.ga4_settings(property_id)`` and ``sandbox.hubspot_config(portal_id)`` may be changed while
it serves. ``server.counters()`` sums over every account; ``set_faults`` applies to all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

from connectors.sandbox.ga4_api import Ga4PropertySettings, Ga4SandboxConfig
from connectors.sandbox.hubspot_account import HubSpotAccount
from connectors.sandbox.hubspot_api import HubSpotSandboxConfig
from connectors.sandbox.server import (
    ApiRequest,
    ApiResponse,
    Route,
    SandboxConfig,
    SandboxContext,
    SandboxServer,
    google_error,
    hubspot_error,
)
from connectors.sandbox.store import Store, StoreTruth, build_store

__all__ = [
    "PORTALS",
    "PROPERTIES",
    "MultiAccountSandbox",
    "PortalSpec",
    "PropertySpec",
    "portal_for_property",
]


@dataclass(frozen=True)
class PropertySpec:
    """One GA4 property of the multi-account sandbox: its own store, zone, seed and size."""

    property_id: str
    label: str
    time_zone: str
    seed_offset: int  # the store's seed is the sandbox's seed + this
    sessions_per_day: float
    lead_rate: float
    bulk_import_contacts: int
    currency_code: str = "USD"


@dataclass(frozen=True)
class PortalSpec:
    """One HubSpot portal: its token, zone, limits, and the property whose visitors become its contacts."""

    portal_id: int
    label: str
    token: str
    property_id: str
    time_zone: str
    general_max: int  # requests per rolling general_interval_ms
    general_interval_ms: int
    search_per_second: int
    daily_limit: int
    company_currency: str
    data_hosting_location: str
    ui_domain: str


PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec("123456789", "US store", "America/New_York", 0, 2_000, 0.055, 2_000),
    PropertySpec("234567890", "DE store", "Europe/Berlin", 1, 800, 0.08, 600),
    PropertySpec("345678901", "JP store", "Asia/Tokyo", 2, 400, 0.03, 100),
)
PORTALS: tuple[PortalSpec, ...] = (
    PortalSpec(
        2345001,
        "US CRM",
        "sandbox-token-us",
        "123456789",
        "America/New_York",
        general_max=100,
        general_interval_ms=10_000,
        search_per_second=5,
        daily_limit=250_000,
        company_currency="USD",
        data_hosting_location="na1",
        ui_domain="app.hubspot.com",
    ),
    PortalSpec(
        2345002,
        "EU CRM",
        "sandbox-token-eu",
        "234567890",
        "Europe/Berlin",
        general_max=190,
        general_interval_ms=10_000,
        search_per_second=5,
        daily_limit=625_000,
        company_currency="EUR",
        data_hosting_location="eu1",
        ui_domain="app-eu1.hubspot.com",
    ),
)
_PROPERTY = {p.property_id: p for p in PROPERTIES}
_PORTAL = {p.portal_id: p for p in PORTALS}


def portal_for_property(property_id: str) -> PortalSpec | None:
    """The portal paired with a property (None for a web-only property)."""
    return next((p for p in PORTALS if p.property_id == property_id), None)


def _bearer(request: ApiRequest) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def _permission_denied() -> ApiResponse:
    return ApiResponse(
        403,
        google_error(
            403,
            "PERMISSION_DENIED",
            "User does not have sufficient permissions for this property. To learn more about Property ID, see "
            "https://developers.google.com/analytics/devguides/reporting/data/v1/property-id.",
        ),
    )


def _invalid_token() -> ApiResponse:
    return ApiResponse(
        401,
        hubspot_error(
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
            "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        ),
    )


class MultiAccountSandbox:
    """Three GA4 properties and two HubSpot portals on one loopback server (see the module docstring).

    ``seed`` is the US store's seed (the others take seed+1, seed+2); ``days`` and ``end_date`` apply to
    every store; ``scale`` multiplies every property's sessions per day (tests use small stores);
    ``revisions=False`` serves GA4 days settled. Building does not start the server: ``start()`` or
    ``with``.
    """

    def __init__(
        self,
        *,
        seed: int = 7,
        days: int = 90,
        end_date: dt.date | str | None = None,
        scale: float = 1.0,
        revisions: bool = True,
        port: int = 0,
    ) -> None:
        if scale <= 0:
            raise ValueError("MultiAccountSandbox: scale must be > 0")
        self.seed = int(seed)
        self._stores: dict[str, Store] = {
            spec.property_id: build_store(
                "demo",
                seed=self.seed + spec.seed_offset,
                end_date=end_date,
                days=days,
                sessions_per_day=spec.sessions_per_day * scale,
                lead_rate=spec.lead_rate,
                bulk_import_contacts=max(1, round(spec.bulk_import_contacts * min(scale, 1.0))),
                time_zone=spec.time_zone,
                property_id=spec.property_id,
            )
            for spec in PROPERTIES
        }
        primary = self._stores[PROPERTIES[0].property_id]
        self.server = SandboxServer(primary, SandboxConfig(seed=self.seed), port=port)
        self._lock = threading.Lock()
        self._revoked_properties: set[str] = set()
        self._contexts: dict[str, SandboxContext] = {}
        for spec in PROPERTIES:
            ga4 = Ga4SandboxConfig(
                properties={
                    spec.property_id: Ga4PropertySettings(
                        spec.property_id, currency_code=spec.currency_code, revisions=revisions
                    )
                }
            )
            portal = portal_for_property(spec.property_id)
            hubspot = HubSpotSandboxConfig() if portal is None else _portal_config(portal)
            config = SandboxConfig(seed=self.seed, ga4=ga4, hubspot=hubspot)
            self._contexts[spec.property_id] = self.server.account_context(
                self._stores[spec.property_id], config
            )
        self._token_portal = {p.token: p.portal_id for p in PORTALS}
        self.server.router = self._route

    # -- what tests read ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def property_ids(self) -> list[str]:
        return [p.property_id for p in PROPERTIES]

    @property
    def portal_ids(self) -> list[int]:
        return [p.portal_id for p in PORTALS]

    @property
    def start_date(self) -> dt.date:
        return self._stores[PROPERTIES[0].property_id].start_date

    @property
    def end_date(self) -> dt.date:
        return self._stores[PROPERTIES[0].property_id].end_date

    def store(self, property_id: str) -> Store:
        return self._stores[property_id]

    def truth(self, property_id: str) -> StoreTruth:
        """The property's truth helpers; every date is a local date in the property's zone."""
        return self._stores[property_id].truth

    def portal(self, portal_id: int) -> PortalSpec:
        return _PORTAL[portal_id]

    def portal_store(self, portal_id: int) -> Store:
        """The store whose contacts, deals and companies the portal serves (its paired property's)."""
        return self._stores[_PORTAL[portal_id].property_id]

    def ga4_settings(self, property_id: str) -> Ga4PropertySettings:
        """The property's live GA4 settings (quota, thresholding, revisions ...)."""
        config: Ga4SandboxConfig = self._contexts[property_id].config.ga4
        return config.properties[property_id]

    def hubspot_config(self, portal_id: int) -> HubSpotSandboxConfig:
        """The portal's live HubSpot settings (limits, expired_tokens, token_scopes ...)."""
        config: HubSpotSandboxConfig = self._contexts[_PORTAL[portal_id].property_id].config.hubspot
        return config

    # -- revocation (run time) ---------------------------------------------------------------------

    def revoke_property(self, property_id: str) -> None:
        """From now on GA4 answers 403 PERMISSION_DENIED for this property only."""
        with self._lock:
            self._revoked_properties.add(property_id)

    def restore_property(self, property_id: str) -> None:
        with self._lock:
            self._revoked_properties.discard(property_id)

    def revoke_portal(self, portal_id: int) -> None:
        """From now on the portal's token gets 401 EXPIRED_AUTHENTICATION; the other portal is untouched."""
        self.hubspot_config(portal_id).expired_tokens.add(_PORTAL[portal_id].token)

    def restore_portal(self, portal_id: int) -> None:
        self.hubspot_config(portal_id).expired_tokens.discard(_PORTAL[portal_id].token)

    # -- serving -----------------------------------------------------------------------------------

    def _route(self, route: Route, request: ApiRequest) -> SandboxContext | ApiResponse:
        if route.api == "ga4":
            property_id = request.path_params.get("property_id", "")
            with self._lock:
                revoked = property_id in self._revoked_properties
            if revoked or property_id not in self._contexts:
                return _permission_denied()
            return self._contexts[property_id]
        token = _bearer(request)
        if not token:
            # The first portal's guard gives HubSpot's answer to a missing credential.
            return self._contexts[PORTALS[0].property_id]
        portal_id = self._token_portal.get(token)
        if portal_id is None:
            return _invalid_token()
        return self._contexts[_PORTAL[portal_id].property_id]

    def start(self) -> MultiAccountSandbox:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def close(self) -> None:
        for store in self._stores.values():
            store.close()

    def __enter__(self) -> MultiAccountSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        """The accounts as plain data (ids, labels, zones, tokens, limits): what a config file would hold."""
        return {
            "properties": [dataclasses.asdict(p) for p in PROPERTIES],
            "portals": [dataclasses.asdict(p) for p in PORTALS],
        }


def _portal_config(portal: PortalSpec) -> HubSpotSandboxConfig:
    return HubSpotSandboxConfig(
        general_max=portal.general_max,
        general_interval_ms=portal.general_interval_ms,
        search_per_second=portal.search_per_second,
        daily_limit=portal.daily_limit,
        account=HubSpotAccount(
            portal_id=portal.portal_id,
            time_zone=portal.time_zone,
            company_currency=portal.company_currency,
            data_hosting_location=portal.data_hosting_location,
            ui_domain=portal.ui_domain,
        ),
    )
