"""Reading GA4's error answers: which allowance a 429 is about, Retry-After, the ErrorInfo of an error
body (a disabled API, its Cloud project) and a short cause for a status code.

Apart from the client so the retry loop reads as decisions, and the body parsing (two shapes: the SDK's
fields or the raw JSON) sits in one place.
"""

from __future__ import annotations

from typing import Any


def _error_payload(exc: Any) -> dict[str, Any]:
    response = getattr(exc, "response", None)
    try:
        data = response.json() if response is not None else {}
    except ValueError:
        data = {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def error_metadata(exc: Any) -> dict[str, str]:
    meta = getattr(exc, "metadata", None)
    if isinstance(meta, dict) and meta:
        return {str(k): str(v) for k, v in meta.items()}
    for detail in _error_payload(exc).get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            return {str(k): str(v) for k, v in (detail.get("metadata") or {}).items()}
    return {}


def _error_reason(exc: Any) -> str | None:
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason)
    for detail in _error_payload(exc).get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            return str(detail.get("reason") or "") or None
    return None


def service_disabled(exc: Any) -> bool:
    if _error_reason(exc) == "SERVICE_DISABLED":
        return True
    text = (getattr(exc, "message", "") or "").lower()
    return "has not been used in project" in text or "it is disabled" in text


def classify_429(exc: Any) -> str:
    """Which allowance a GA4 429 is about: 'day', 'hour', 'thresholded', 'server_errors', 'concurrent',
    'project_rate' (the Cloud project's per-minute request quota) or 'unknown'.

    The structured fields decide first: an ErrorInfo ``reason`` of RATE_LIMIT_EXCEEDED is the Cloud
    project's quota, and only a ``status`` of RESOURCE_EXHAUSTED (or none) is a property quota. Google
    names the property quota only in the message, so the text decides which one, last."""
    reason = _error_reason(exc)
    if reason in ("RATE_LIMIT_EXCEEDED", "RATE_LIMIT_EXCEEDED_PER_MINUTE"):
        return "project_rate"
    status = _error_payload(exc).get("status")
    if status not in (None, "RESOURCE_EXHAUSTED"):
        return "unknown"
    text = (getattr(exc, "message", "") or "").lower()
    if "potentially thresholded" in text:
        return "thresholded"
    if "per day" in text:
        return "day"
    if "server errors" in text:
        return "server_errors"
    if "per hour" in text or "per project per hour" in text:
        return "hour"
    if "concurrent" in text:
        return "concurrent"
    return "unknown"


def retry_after_seconds(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def cause(exc: Any) -> str:
    return {
        400: "invalid request",
        401: "authentication failed (credentials missing, expired or revoked)",
        403: "permission denied (the credentials have no access to this property)",
        404: "not found (check the property id)",
    }.get(exc.code, "error")
