"""One GA4 API call: the quota budget checked before it, the answer's quota recorded after it, transient
failures retried with jittered backoff, and every other failure turned into one error naming the
property, the report and the cause.

Apart from the client so the retry and quota decisions (wait, defer, fail the property) read in one
place; the client hands each call its settings, the property's budget and its sleep.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import Any

from connectors.ga4.errors import Ga4FetchError, Ga4QuotaDeferred, Ga4QuotaExhausted
from connectors.ga4.quota import GA4_STANDARD_CONCURRENT, PropertyBudget
from connectors.ga4.request_log import ReportLog
from connectors.ga4.responses import (
    cause,
    classify_429,
    error_metadata,
    retry_after_seconds,
    service_disabled,
)
from connectors.ga4.settings import Ga4Settings


def call(
    settings: Ga4Settings,
    budget: PropertyBudget,
    sleep: Callable[[float], None],
    property_id: str,
    report: str,
    fn: Callable[[], Any],
    log: ReportLog,
    *,
    use_budget: bool,
    potentially_thresholded: bool = False,
) -> Any:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc
    from google.protobuf.json_format import ParseError
    from requests import exceptions as rexc

    attempt = 0
    waited_for_quota = 0.0
    while True:
        if use_budget:
            verdict = budget.check(report, potentially_thresholded)
            if verdict is not None:
                waited_for_quota = quota_stop(
                    settings, sleep, property_id, report, verdict, budget, waited_for_quota, log
                )
                continue
        retry_after: float | None = None
        try:
            with budget.concurrency, shared_slot(settings, property_id, budget):
                response = fn()
            quota = getattr(response, "property_quota", None)
            if use_budget and quota is not None and "property_quota" in response:
                log_cost = budget.observe(quota)
                log.add("quota_tokens_used", log_cost)
                log.entry["quota_tokens_remaining_hour"] = budget.remaining("hour")
                log.entry["quota_tokens_remaining_day"] = budget.remaining("day")
            return response
        except gexc.TooManyRequests as exc:
            log.add("http_429")
            message = exc.message or ""
            kind = classify_429(exc)
            if kind == "day":
                raise Ga4QuotaExhausted(
                    f"GA4 property {property_id}: daily token quota exhausted (report '{report}'); its remaining "
                    "reports fail until the quota refreshes at midnight Pacific time",
                    property_id=property_id,
                    report=report,
                ) from None
            if kind in ("hour", "server_errors", "thresholded"):
                waited_for_quota = quota_stop(
                    settings, sleep, property_id, report, kind, budget, waited_for_quota, log
                )
                continue
            retry_after = retry_after_seconds(exc)
            failure = f"429 ({kind}) {message}"
        except (
            gexc.InternalServerError,
            gexc.BadGateway,
            gexc.ServiceUnavailable,
            gexc.GatewayTimeout,
        ) as exc:
            budget.note_server_error()
            retry_after = retry_after_seconds(exc)
            failure = f"{exc.code} {exc.message}"
        except (rexc.ConnectionError, rexc.Timeout, rexc.ChunkedEncodingError, ParseError) as exc:
            failure = f"{type(exc).__name__} (connection dropped, timed out or answer malformed)"
        except gexc.Forbidden as exc:
            if service_disabled(exc):
                project = error_metadata(exc).get("consumer") or "of these credentials"
                raise Ga4FetchError(
                    f"GA4 property {property_id}, report '{report}': 403 SERVICE_DISABLED — the Google Analytics "
                    f"Data API is not enabled in the Cloud project ({project}) the credentials belong to. Enable "
                    "analyticsdata.googleapis.com in that project (Google Cloud console > APIs & Services > "
                    "Library), wait a few minutes and rerun",
                    property_id=property_id,
                    report=report,
                ) from None
            raise Ga4FetchError(
                f"GA4 property {property_id}, report '{report}': {exc.code} {cause(exc)} — {exc.message}",
                property_id=property_id,
                report=report,
            ) from None
        except (gexc.BadRequest, gexc.Unauthorized, gexc.NotFound) as exc:
            raise Ga4FetchError(
                f"GA4 property {property_id}, report '{report}': {exc.code} {cause(exc)} — {exc.message}",
                property_id=property_id,
                report=report,
            ) from None
        except auth_exc.GoogleAuthError as exc:
            raise Ga4FetchError(
                f"GA4 property {property_id}, report '{report}': 401 authentication failed — the API rejected the "
                f"credentials and they cannot be refreshed ({type(exc).__name__})",
                property_id=property_id,
                report=report,
            ) from None
        except gexc.GoogleAPICallError as exc:
            raise Ga4FetchError(
                f"GA4 property {property_id}, report '{report}': {exc.code} {exc.message}",
                property_id=property_id,
                report=report,
            ) from None
        attempt += 1
        if attempt > settings.max_retries:
            raise Ga4FetchError(
                f"GA4 property {property_id}, report '{report}': gave up after {settings.max_retries} retries; "
                f"last failure: {failure}",
                property_id=property_id,
                report=report,
            )
        log.add("retries")
        delay = backoff(settings, attempt, retry_after)
        log.add("wait_seconds", delay)
        sleep(delay)


def shared_slot(settings: Ga4Settings, property_id: str, budget: PropertyBudget) -> Any:
    """One of the property's concurrent-request slots across processes (a lease in the shared store)."""
    if not settings.rate_budget_path:
        return contextlib.nullcontext()
    from connectors.rate_budget import open_budget

    concurrent = budget.quota.get("concurrent")
    limit = concurrent.limit - 1 if concurrent and concurrent.limit else GA4_STANDARD_CONCURRENT - 1
    return open_budget(settings.rate_budget_path).concurrent_slot(f"ga4:{property_id}", max(limit, 1))


def backoff(settings: Ga4Settings, attempt: int, retry_after: float | None) -> float:
    ceiling = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)  # "equal jitter": spread, but never near zero
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def quota_stop(
    settings: Ga4Settings,
    sleep: Callable[[float], None],
    property_id: str,
    report: str,
    verdict: str,
    budget: PropertyBudget,
    waited: float,
    log: ReportLog,
) -> float:
    """Hourly allowance reached: wait (up to max_quota_wait_s) or defer. Daily: fail the property."""
    if verdict == "day":
        remaining = budget.remaining("day")
        raise Ga4QuotaExhausted(
            f"GA4 property {property_id}: daily token budget reached ({remaining} tokens left, reserve "
            f"{settings.quota_reserve_fraction:.0%}); report '{report}' and the rest of this property's "
            "reports fail for today, other properties go on",
            property_id=property_id,
            report=report,
        )
    what = {
        "server_errors": "server-error allowance",
        "thresholded": "allowance of potentially thresholded requests (120 an hour)",
    }.get(verdict, "hourly token budget")
    if waited < settings.max_quota_wait_s:
        pause = min(settings.quota_poll_s, settings.max_quota_wait_s - waited)
        log.add("wait_seconds", pause)
        sleep(pause)
        budget.forget_hour()
        return waited + pause
    raise Ga4QuotaDeferred(
        f"GA4 property {property_id}: {what} reached (hour tokens left: {budget.remaining('hour')}, project-hour "
        f"tokens left: {budget.remaining('project_hour')}); report '{report}' deferred — rerun after the hourly "
        "quota refreshes",
        property_id=property_id,
        report=report,
    )


# -- request log ------------------------------------------------------------------------
