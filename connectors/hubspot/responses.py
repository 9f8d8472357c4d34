"""Reading HubSpot's answers: the SDK's exception types, Retry-After, fields of an error body, and a
401/403 turned into one message naming what to fix (an expired token, a missing scope).
"""

from __future__ import annotations

import json
from typing import Any

from connectors.hubspot.settings import HubSpotAuthError


def api_exception_types() -> tuple[type[BaseException], ...]:
    import hubspot.crm.associations.v4.exceptions as assoc_exc
    import hubspot.crm.companies.exceptions as companies_exc
    import hubspot.crm.contacts.exceptions as contacts_exc
    import hubspot.crm.deals.exceptions as deals_exc
    import hubspot.crm.pipelines.exceptions as pipelines_exc
    import hubspot.crm.properties.exceptions as properties_exc

    return tuple(
        m.ApiException
        for m in (contacts_exc, companies_exc, deals_exc, properties_exc, pipelines_exc, assoc_exc)
    )


API_EXCEPTIONS = api_exception_types()


def retry_after_seconds(headers: dict[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(float(value), 0.0)
            except ValueError:
                return None
    return None


def json_field(body: Any, name: str) -> Any:
    try:
        data = json.loads(body) if isinstance(body, str | bytes) else body
        return data.get(name) if isinstance(data, dict) else None
    except ValueError:
        return None


def short(body: Any, limit: int = 300) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return text if len(text) <= limit else text[:limit] + "..."


def auth_error(status: int, body: Any) -> HubSpotAuthError:
    try:
        data = json.loads(body) if isinstance(body, str | bytes) else (body or {})
    except ValueError:
        data = {}
    category = data.get("category") if isinstance(data, dict) else None
    message = data.get("message", "") if isinstance(data, dict) else ""
    scopes: list[str] = []
    legacy = False
    for err in (data.get("errors") or []) if isinstance(data, dict) else []:
        context = err.get("context") or {}
        if context.get("requiredGranularScopes"):
            scopes += list(context["requiredGranularScopes"])
        elif context.get("requiredScopes"):
            # HubSpot's older shape names the old scopes (e.g. "contacts"), not the private app's.
            legacy = True
            scopes += list(context["requiredScopes"])
    if status == 403:
        named = ", ".join(scopes) or "unknown (HubSpot did not say)"
        if legacy:
            granted_as = [LEGACY_SCOPES.get(s, s) for s in scopes]
            named += f" (HubSpot's older scope name; a private app grants it as {', '.join(granted_as)})"
        return HubSpotAuthError(
            f"HubSpot refused the request (403 {category or 'FORBIDDEN'}): the private app's token lacks a "
            f"scope. Required scope: {named}. Add it to the private app and use its new token.",
            403,
            tuple(scopes),
        )
    what = "expired" if category == "EXPIRED_AUTHENTICATION" else "missing or invalid"
    return HubSpotAuthError(
        f"HubSpot rejected the token (401 {category or 'UNAUTHORIZED'}): the access token is {what}. "
        f"HubSpot said: {message}",
        401,
    )


# Older scope names HubSpot's older 403 shape gives, and the private-app scopes that grant them.
LEGACY_SCOPES = {
    "contacts": "crm.objects.contacts.read",
    "crm.objects.contacts.read": "crm.objects.contacts.read",
}
