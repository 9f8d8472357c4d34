"""GA4 Data API client: validated, quota-aware, retrying, complete reports as Arrow batches.

Built on the official ``google-analytics-data`` SDK over REST. One ``Ga4Client`` serves several
properties; ``fetch_report`` streams one report for one property and date window page by page, so
memory stays flat however many rows the report has.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from connectors.ga4.convert import response_to_batch
from connectors.ga4.errors import Ga4ConfigError, Ga4FetchError, Ga4QuotaDeferred, Ga4QuotaExhausted
from connectors.ga4.specs import ReportSpec, check_specs
from connectors.ga4.windows import DateWindow

MAX_PAGE_SIZE = 250_000
ANALYTICS_SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
STANDARD_SERVER_ERRORS_PER_HOUR = 10
GA4_STANDARD_CONCURRENT = 10  # concurrent requests per standard property (Data API quotas)
# Metrics that count users: a request with one of them may be thresholded (Google signals, demographics),
# so it also spends the property's separate allowance of potentially thresholded requests (120 an hour).
USER_METRICS = frozenset(
    {
        "totalUsers",
        "newUsers",
        "activeUsers",
        "active1DayUsers",
        "active7DayUsers",
        "active28DayUsers",
        "totalPurchasers",
        "firstTimePurchasers",
        "dauPerMau",
        "dauPerWau",
        "wauPerMau",
    }
)
# propertyQuota's sub-quotas: (our key, proto field). proto3 JSON leaves out a sub-quota the API did not
# report; a missing one is unknown (never read as a limit of 0).
QUOTA_FIELDS = (
    ("day", "tokens_per_day"),
    ("hour", "tokens_per_hour"),
    ("project_hour", "tokens_per_project_per_hour"),
    ("server_errors", "server_errors_per_project_per_hour"),
    ("concurrent", "concurrent_requests"),
    ("thresholded", "potentially_thresholded_requests_per_hour"),
)


@dataclass
class Ga4Settings:
    """How the connector talks to GA4. Secrets never live here: only a path to a key file.

    ``api_endpoint`` set and no ``credentials_file``: anonymous credentials (the sandbox).
    Otherwise the service-account file (``credentials_file`` or GOOGLE_APPLICATION_CREDENTIALS)
    or application default credentials.
    """

    property_ids: list[str]
    api_endpoint: str | None = None
    credentials_file: str | None = None
    lookback_days: int = 3
    page_size: int = MAX_PAGE_SIZE
    # The SDK parses a REST page into Python dicts first (about 450 bytes per value), so a 250,000-row
    # page of 9 columns briefly needs about 1 GB. Pages are made smaller than page_size when a page of
    # the report's width would need more than this much memory (None: always page_size).
    page_memory_mb: float | None = 320.0
    max_retries: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 64.0
    timeout_s: float = 120.0
    # Stop before a quota is spent: keep this share of each token allowance unused.
    quota_reserve_fraction: float = 0.05
    # How long a fetch may wait for hourly tokens to refresh before it defers (0: defer at once).
    max_quota_wait_s: float = 0.0
    quota_poll_s: float = 300.0
    max_concurrent_requests: int = 3
    # A SQLite file every process on this host shares (connectors.rate_budget): requests of all of them
    # to one property stay within its concurrent-request quota, one below it (None: this process only).
    rate_budget_path: str | None = None
    prefetch_pages: bool = True
    split_incomplete: bool = True
    max_split_dimensions: int = 2  # after date, split one day by at most this many dimensions in turn
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def problems(self) -> list[str]:
        out = []
        if not self.property_ids:
            out.append(
                "Ga4Settings.property_ids: name at least one GA4 property id (digits, e.g. '123456789')"
            )
        for pid in self.property_ids:
            if not str(pid).isdigit():
                out.append(
                    f"Ga4Settings.property_ids: '{pid}' is not a GA4 property id (digits only, no 'properties/')"
                )
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            out.append(f"Ga4Settings.page_size: {self.page_size} must be between 1 and {MAX_PAGE_SIZE:,}")
        if self.lookback_days < 0:
            out.append("Ga4Settings.lookback_days: must be 0 or more")
        if not 0 <= self.quota_reserve_fraction < 1:
            out.append("Ga4Settings.quota_reserve_fraction: must be in [0, 1)")
        if self.max_concurrent_requests < 1:
            out.append("Ga4Settings.max_concurrent_requests: must be 1 or more")
        return out


# --------------------------------------------------------------------------------------------
# quota budget


@dataclass
class _QuotaView:
    consumed: int
    remaining: int

    @property
    def limit(self) -> int:
        return self.consumed + self.remaining


class PropertyBudget:
    """What the connector knows about one property's quota, from ``propertyQuota`` of each answer."""

    def __init__(self, property_id: str, settings: Ga4Settings) -> None:
        self.property_id = property_id
        self.settings = settings
        self.lock = threading.Lock()
        self.quota: dict[str, _QuotaView] = {}
        self.max_cost = 0
        self.server_errors = 0
        self.errors_since_quota = 0
        self.tokens_used = 0
        self.concurrency = threading.BoundedSemaphore(settings.max_concurrent_requests)
        self.concurrency_size = settings.max_concurrent_requests

    def observe(self, quota: Any) -> int:
        """Records a response's PropertyQuota; returns the tokens that request cost."""
        if quota is None:
            return 0
        views = {key: getattr(quota, name) for key, name in QUOTA_FIELDS if _has_field(quota, name)}
        with self.lock:
            before = self.quota.get("day")
            for key, status in views.items():
                self.quota[key] = _QuotaView(int(status.consumed), int(status.remaining))
            day = self.quota.get("day")
            if day is None:
                cost = 0  # the daily figure was not reported: this answer's cost is unknown
            elif before is None:
                cost = 1  # the first answer cannot show its own cost; GA4 charges at least one token
            elif day.consumed >= before.consumed:
                cost = day.consumed - before.consumed
            else:
                cost = day.consumed  # the daily window rolled over in between
            self.max_cost = max(self.max_cost, cost)
            self.errors_since_quota = 0
            self.tokens_used += cost
            self._fit_concurrency()
        return cost

    def _fit_concurrency(self) -> None:
        # Stay one below the property's concurrent-request limit (other tools may share it).
        concurrent = self.quota.get("concurrent")
        if concurrent and concurrent.limit:
            target = max(1, min(self.settings.max_concurrent_requests, concurrent.limit - 1))
            if target < self.concurrency_size:
                self.concurrency = threading.BoundedSemaphore(target)
                self.concurrency_size = target

    def remaining(self, key: str) -> int | None:
        with self.lock:
            view = self.quota.get(key)
            return view.remaining if view else None

    def check(self, report: str, potentially_thresholded: bool = False) -> str | None:
        """None if a request may go out; else 'day', 'hour', 'thresholded' or 'server_errors' (which
        allowance would be crossed). Allowances the API has not reported are unknown, never zero."""
        with self.lock:
            estimate = max(self.max_cost, 1)
            day = self.quota.get("day")
            if day and day.remaining - estimate < math.ceil(day.limit * self.settings.quota_reserve_fraction):
                return "day"
            for key in ("hour", "project_hour"):
                view = self.quota.get(key)
                if view and view.remaining - estimate < math.ceil(
                    view.limit * self.settings.quota_reserve_fraction
                ):
                    return "hour"
            thresholded = self.quota.get("thresholded")
            # One request spends one of these (not tokens); keep the same reserve.
            if (
                potentially_thresholded
                and thresholded
                and thresholded.remaining - 1
                < math.ceil(thresholded.limit * self.settings.quota_reserve_fraction)
            ):
                return "thresholded"
            # Failed answers carry no quota, so errors since the last one are added by hand; the
            # standard allowance (10 an hour) stands in until a response has shown the real one.
            errors = self.quota.get("server_errors")
            limit = errors.limit if errors else STANDARD_SERVER_ERRORS_PER_HOUR
            consumed = errors.consumed if errors else 0
            if consumed + self.errors_since_quota >= limit - 1:
                return "server_errors"
            return None

    def note_server_error(self) -> None:
        with self.lock:
            self.server_errors += 1
            self.errors_since_quota += 1

    def forget_hour(self) -> None:
        """After waiting, the hourly figures are stale: let one request probe the refreshed quota."""
        with self.lock:
            for key in ("hour", "project_hour", "server_errors", "thresholded"):
                self.quota.pop(key, None)


# --------------------------------------------------------------------------------------------
# the client


@dataclass
class _ReportLog:
    entry: dict[str, Any]

    def add(self, key: str, n: int | float = 1) -> None:
        self.entry[key] = self.entry.get(key, 0) + n

    def flag(self, key: str, value: bool) -> None:
        self.entry[key] = bool(self.entry.get(key)) or bool(value)


PARSE_BYTES_PER_VALUE = 450


def page_limit(settings: Ga4Settings, spec: ReportSpec, *, dimensions: int | None = None) -> int:
    """Rows per page for a spec: ``page_size``, or fewer when a page would outgrow ``page_memory_mb``.

    ``dimensions``: the request asks for this many dimensions (and all the spec's metrics) instead
    of the spec's own."""
    if settings.page_memory_mb is None:
        return settings.page_size
    values_per_row = (len(spec.dimensions) if dimensions is None else dimensions) + len(spec.metrics)
    by_memory = int(settings.page_memory_mb * 2**20 // (values_per_row * PARSE_BYTES_PER_VALUE))
    return min(settings.page_size, max(1_000, by_memory))


class Ga4Client:
    def __init__(self, settings: Ga4Settings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        problems = settings.problems()
        if problems:
            raise Ga4ConfigError("\n".join(problems))
        self.settings = settings
        self.request_log: list[dict[str, Any]] = []
        self.failures: dict[str, str] = {}
        self._sleep = sleep
        self._local = threading.local()
        self._budgets: dict[str, PropertyBudget] = {}
        self._budgets_lock = threading.Lock()
        self._credentials = self._make_credentials()
        self._metadata: dict[str, tuple[set[str], set[str]]] = {}
        self._time_zones: dict[str, str] = {}
        self._validated: set[tuple[str, str]] = set()

    # -- SDK plumbing -------------------------------------------------------------------------

    def _make_credentials(self) -> Any:
        from google.auth.credentials import AnonymousCredentials

        # Unset: application default credentials, which read GOOGLE_APPLICATION_CREDENTIALS themselves.
        path = self.settings.credentials_file
        if self.settings.api_endpoint and not self.settings.credentials_file:
            return AnonymousCredentials()
        if path:
            from google.oauth2 import service_account

            try:
                return service_account.Credentials.from_service_account_file(path, scopes=[ANALYTICS_SCOPE])
            except (OSError, ValueError) as exc:
                # The message names the file and the problem, never the key material.
                raise Ga4ConfigError(
                    f"GA4 credentials file {path}: cannot be read as a service-account key ({type(exc).__name__})"
                ) from None
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, _project = google.auth.default(scopes=[ANALYTICS_SCOPE])
        except DefaultCredentialsError:
            raise Ga4ConfigError(
                "GA4 credentials: none found. Set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file "
                "(Ga4Settings.credentials_file), or sign in with `gcloud auth application-default login`; "
                "leave both unset and set api_endpoint to use the sandbox"
            ) from None
        return credentials

    def _sdk(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            from google.analytics.data_v1beta import BetaAnalyticsDataClient

            options = {"api_endpoint": self.settings.api_endpoint} if self.settings.api_endpoint else None
            client = BetaAnalyticsDataClient(
                transport="rest", credentials=self._credentials, client_options=options
            )
            self._local.client = client
        return client

    def property_time_zone(self, property_id: str) -> str | None:
        """The property's reporting time zone, once a report response has named it."""
        return self._time_zones.get(property_id)

    def reporting_time_zone(self, property_id: str, day: dt.date) -> str:
        """The property's reporting time zone, as GA4 states it in a report response's metadata.

        getMetadata does not carry the zone, so this asks for one row of one day (date x sessions: one
        quota token, no user metric, so not a potentially thresholded request) unless a report of this
        client already named it. Callers compare it with their configuration before any report."""
        known = self._time_zones.get(property_id)
        if known:
            return known
        probe = ReportSpec("time_zone", ("date",), ("sessions",))
        log = self._new_log(property_id, "time_zone", "metadata", day, day)
        try:
            response = self._run(
                property_id,
                probe.name,
                self._request(property_id, probe, DateWindow(day, day), {}, 0, 1),
                log,
            )
        except Ga4FetchError as exc:
            self._finish_log(log, error=str(exc))
            raise
        self._finish_log(log)
        zone = str(response.metadata.time_zone or "")
        if not zone:
            raise Ga4FetchError(f"GA4 property {property_id}: the report response named no time zone")
        self._time_zones[property_id] = zone
        return zone

    def budget(self, property_id: str) -> PropertyBudget:
        with self._budgets_lock:
            if property_id not in self._budgets:
                self._budgets[property_id] = PropertyBudget(property_id, self.settings)
            return self._budgets[property_id]

    # -- validation ---------------------------------------------------------------------------

    def metadata(self, property_id: str) -> tuple[set[str], set[str]]:
        """(dimension API names, metric API names) the property offers, custom ones included."""
        if property_id not in self._metadata:
            from google.analytics.data_v1beta.types import GetMetadataRequest

            log = self._new_log(property_id, "metadata", "metadata", None, None)
            try:
                meta = self._call(
                    property_id,
                    "metadata",
                    lambda: self._sdk().get_metadata(
                        request=GetMetadataRequest(name=f"properties/{property_id}/metadata"),
                        timeout=self.settings.timeout_s,
                    ),
                    log,
                    use_budget=False,
                )
            except Ga4FetchError as exc:
                self._finish_log(log, error=str(exc))
                raise
            self._finish_log(log)
            self._metadata[property_id] = (
                {d.api_name for d in meta.dimensions},
                {m.api_name for m in meta.metrics},
            )
        return self._metadata[property_id]

    def validate(self, specs: Sequence[ReportSpec], source: str = "report specs") -> None:
        """Checks every spec against every property's metadata; one message per bad field."""
        check_specs(specs, source)
        problems = []
        for property_id in self.settings.property_ids:
            dims, mets = self.metadata(property_id)
            for spec in specs:
                for name in spec.dimensions:
                    if name not in dims:
                        problems.append(
                            f"{source}: report '{spec.name}': dimension '{name}' is not offered by GA4 property "
                            f"{property_id}{_hint(name, dims, mets, 'dimension')}"
                        )
                for name in spec.metrics:
                    if name not in mets:
                        problems.append(
                            f"{source}: report '{spec.name}': metric '{name}' is not offered by GA4 property "
                            f"{property_id}{_hint(name, mets, dims, 'metric')}"
                        )
                for name in spec.filters:
                    if name not in dims:
                        problems.append(
                            f"{source}: report '{spec.name}': filter dimension '{name}' is not offered by GA4 "
                            f"property {property_id}{_hint(name, dims, mets, 'dimension')}"
                        )
        if problems:
            raise Ga4ConfigError("\n".join(problems))
        self._validated.update((pid, repr(spec)) for pid in self.settings.property_ids for spec in specs)

    # -- fetching -----------------------------------------------------------------------------

    def fetch_report(
        self,
        property_id: str,
        spec: ReportSpec,
        start_date: dt.date,
        end_date: dt.date,
        *,
        mode: str = "full",
    ) -> Iterator[pa.RecordBatch]:
        """Streams one report for one property and window as Arrow batches (one per page)."""
        if (property_id, repr(spec)) not in self._validated:
            self.validate([spec])
        log = self._new_log(property_id, spec.name, mode, start_date, end_date)
        try:
            yield from self._fetch_window(
                property_id, spec, DateWindow(start_date, end_date), {}, log, depth=0
            )
        except Ga4FetchError as exc:
            self._finish_log(log, error=str(exc))
            raise
        except GeneratorExit:
            self._finish_log(log, error="consumer stopped reading")
            raise
        self._finish_log(log)

    def fetch_reports(
        self,
        specs: Sequence[ReportSpec],
        windows: Sequence[DateWindow],
    ) -> Iterator[tuple[str, ReportSpec, DateWindow, pa.RecordBatch]]:
        """Every spec x window for every property. A property that fails (daily quota spent,
        a permanent error) is recorded in ``failures`` and the other properties go on."""
        self.validate(specs)
        for property_id in self.settings.property_ids:
            try:
                for spec in specs:
                    for window in windows:
                        for batch in self.fetch_report(
                            property_id, spec, window.start, window.end, mode=window.mode
                        ):
                            yield property_id, spec, window, batch
            except Ga4FetchError as exc:
                self.failures[property_id] = str(exc)

    def _request(
        self,
        property_id: str,
        spec: ReportSpec,
        window: DateWindow,
        extra: Mapping[str, tuple[str, ...]],
        offset: int,
        limit: int,
        dimensions: Sequence[str] | None = None,
    ) -> Any:
        from google.analytics.data_v1beta.types import RunReportRequest

        dims = list(dimensions if dimensions is not None else spec.dimensions)
        request = RunReportRequest(
            property=f"properties/{property_id}",
            dimensions=[{"name": d} for d in dims],
            metrics=[{"name": m} for m in spec.metrics],
            date_ranges=[{"start_date": window.start.isoformat(), "end_date": window.end.isoformat()}],
            offset=offset,
            limit=limit,
            keep_empty_rows=spec.keep_empty_rows,
            return_property_quota=True,
        )
        expr = spec.dimension_filter(extra)
        if expr is not None:
            # proto-plus accepts the REST JSON shape (a dict) for a message field.
            request.dimension_filter = expr  # type: ignore[assignment]
        return request

    def _run(self, property_id: str, report: str, request: Any, log: _ReportLog) -> Any:
        response = self._call(
            property_id,
            report,
            lambda: self._sdk().run_report(request=request, timeout=self.settings.timeout_s),
            log,
            use_budget=True,
            potentially_thresholded=any(m.name in USER_METRICS for m in request.metrics),
        )
        log.add("requests")
        return response

    def _fetch_window(
        self,
        property_id: str,
        spec: ReportSpec,
        window: DateWindow,
        extra: Mapping[str, tuple[str, ...]],
        log: _ReportLog,
        depth: int,
    ) -> Iterator[pa.RecordBatch]:
        limit = page_limit(self.settings, spec)
        first = self._run(
            property_id, spec.name, self._request(property_id, spec, window, extra, 0, limit), log
        )
        meta = first.metadata
        if meta.time_zone:
            self._time_zones[property_id] = meta.time_zone
        sampled = len(meta.sampling_metadatas) > 0
        incomplete = meta.data_loss_from_other_row or sampled
        if incomplete and self.settings.split_incomplete:
            if window.days > 1:
                log.add("splits")
                for half in window.halves():
                    yield from self._fetch_window(property_id, spec, half, extra, log, depth + 1)
                return
            split_dim, values = self._split_values(property_id, spec, window, extra, log)
            if split_dim is not None:
                log.add("splits")
                for value in values:
                    yield from self._fetch_window(
                        property_id, spec, window, {**extra, split_dim: (value,)}, log, depth + 1
                    )
                return
        # Clean, or it cannot be split further: stream it and flag what remains.
        yield from self._stream_pages(property_id, spec, window, extra, log, first)

    def _split_values(
        self,
        property_id: str,
        spec: ReportSpec,
        window: DateWindow,
        extra: Mapping[str, tuple[str, ...]],
        log: _ReportLog,
    ) -> tuple[str | None, list[str]]:
        """The next dimension to split a one-day window by and its values, or (None, []) when no
        split is left (``max_split_dimensions`` used, or the values themselves fold into "(other)")."""
        used = [d for d in extra if d in spec.split_order()]
        if len(used) >= self.settings.max_split_dimensions:
            return None, []
        # The listing asks for all the spec's metrics with its keep_empty_rows, as the report does:
        # GA4 leaves out a row whose requested metrics are all zero, so a listing by one metric
        # would miss a value whose rows carry only the others, and those rows would never be
        # fetched. Its pages keep to the parse budget for that wider row (still page_size unless
        # one day has tens of thousands of values).
        limit = page_limit(self.settings, spec, dimensions=1)
        for split_dim in [d for d in spec.split_order() if d not in extra]:
            values: list[str] = []
            offset = 0
            while True:
                request = self._request(
                    property_id, spec, window, extra, offset, limit, dimensions=[split_dim]
                )
                response = self._run(property_id, spec.name, request, log)
                if response.metadata.data_loss_from_other_row:
                    return None, []
                values.extend(row.dimension_values[0].value for row in response.rows)
                offset += len(response.rows)
                if offset >= response.row_count or not response.rows:
                    break
            if len(values) > 1:  # one value would split nothing: try the next dimension
                return split_dim, values
        return None, []

    def _stream_pages(
        self,
        property_id: str,
        spec: ReportSpec,
        window: DateWindow,
        extra: Mapping[str, tuple[str, ...]],
        log: _ReportLog,
        first: Any,
    ) -> Iterator[pa.RecordBatch]:
        limit = page_limit(self.settings, spec)
        expected = first.row_count
        pages = max(1, math.ceil(expected / limit)) if expected else 1
        received = 0
        executor = ThreadPoolExecutor(max_workers=1) if self.settings.prefetch_pages and pages > 1 else None
        pending: Future | None = None

        def fetch(offset: int) -> Any:
            return self._run(
                property_id, spec.name, self._request(property_id, spec, window, extra, offset, limit), log
            )

        try:
            response = first
            for page in range(pages):
                if page > 0:
                    response = pending.result() if pending is not None else fetch(page * limit)
                    pending = None
                    if response.row_count != expected:
                        raise Ga4FetchError(
                            f"GA4 property {property_id}, report '{spec.name}' {window}: the report changed while "
                            f"paging (rowCount {expected:,} on the first page, {response.row_count:,} on page "
                            f"{page + 1}); rerun the window",
                            property_id=property_id,
                            report=spec.name,
                        )
                if executor is not None and page + 1 < pages:
                    pending = executor.submit(fetch, (page + 1) * limit)
                batch = response_to_batch(
                    response,
                    property_id=property_id,
                    spec=spec,
                    single_day=window.start if window.days == 1 else None,
                )
                self._log_flags(log, response)
                log.add("pages")
                log.add("rows", batch.num_rows)
                received += batch.num_rows
                if batch.num_rows:
                    yield batch
        finally:
            if pending is not None:
                pending.cancel()
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        if received != expected:
            raise Ga4FetchError(
                f"GA4 property {property_id}, report '{spec.name}' {window}: received {received:,} rows but the API's "
                f"rowCount is {expected:,}; the fetch is incomplete and nothing from it should be loaded",
                property_id=property_id,
                report=spec.name,
            )

    def _log_flags(self, log: _ReportLog, response: Any) -> None:
        meta = response.metadata
        log.flag("subject_to_thresholding", meta.subject_to_thresholding)
        log.flag("data_loss_from_other_row", meta.data_loss_from_other_row)
        log.flag("sampled", len(meta.sampling_metadatas) > 0)

    # -- one API call, with retries and the quota budget -------------------------------------

    def _call(
        self,
        property_id: str,
        report: str,
        fn: Callable[[], Any],
        log: _ReportLog,
        *,
        use_budget: bool,
        potentially_thresholded: bool = False,
    ) -> Any:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        from google.protobuf.json_format import ParseError
        from requests import exceptions as rexc

        budget = self.budget(property_id)
        attempt = 0
        waited_for_quota = 0.0
        while True:
            if use_budget:
                verdict = budget.check(report, potentially_thresholded)
                if verdict is not None:
                    waited_for_quota = self._quota_stop(
                        property_id, report, verdict, budget, waited_for_quota, log
                    )
                    continue
            retry_after: float | None = None
            try:
                with budget.concurrency, self._shared_slot(property_id, budget):
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
                    waited_for_quota = self._quota_stop(
                        property_id, report, kind, budget, waited_for_quota, log
                    )
                    continue
                retry_after = _retry_after(exc)
                failure = f"429 ({kind}) {message}"
            except (
                gexc.InternalServerError,
                gexc.BadGateway,
                gexc.ServiceUnavailable,
                gexc.GatewayTimeout,
            ) as exc:
                budget.note_server_error()
                retry_after = _retry_after(exc)
                failure = f"{exc.code} {exc.message}"
            except (rexc.ConnectionError, rexc.Timeout, rexc.ChunkedEncodingError, ParseError) as exc:
                failure = f"{type(exc).__name__} (connection dropped, timed out or answer malformed)"
            except gexc.Forbidden as exc:
                if _service_disabled(exc):
                    project = _error_metadata(exc).get("consumer") or "of these credentials"
                    raise Ga4FetchError(
                        f"GA4 property {property_id}, report '{report}': 403 SERVICE_DISABLED — the Google Analytics "
                        f"Data API is not enabled in the Cloud project ({project}) the credentials belong to. Enable "
                        "analyticsdata.googleapis.com in that project (Google Cloud console > APIs & Services > "
                        "Library), wait a few minutes and rerun",
                        property_id=property_id,
                        report=report,
                    ) from None
                raise Ga4FetchError(
                    f"GA4 property {property_id}, report '{report}': {exc.code} {_cause(exc)} — {exc.message}",
                    property_id=property_id,
                    report=report,
                ) from None
            except (gexc.BadRequest, gexc.Unauthorized, gexc.NotFound) as exc:
                raise Ga4FetchError(
                    f"GA4 property {property_id}, report '{report}': {exc.code} {_cause(exc)} — {exc.message}",
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
            if attempt > self.settings.max_retries:
                raise Ga4FetchError(
                    f"GA4 property {property_id}, report '{report}': gave up after {self.settings.max_retries} retries; "
                    f"last failure: {failure}",
                    property_id=property_id,
                    report=report,
                )
            log.add("retries")
            delay = self._backoff(attempt, retry_after)
            log.add("wait_seconds", delay)
            self._sleep(delay)

    def _shared_slot(self, property_id: str, budget: PropertyBudget) -> Any:
        """One of the property's concurrent-request slots across processes (a lease in the shared store)."""
        if not self.settings.rate_budget_path:
            return contextlib.nullcontext()
        from connectors.rate_budget import open_budget

        concurrent = budget.quota.get("concurrent")
        limit = concurrent.limit - 1 if concurrent and concurrent.limit else GA4_STANDARD_CONCURRENT - 1
        return open_budget(self.settings.rate_budget_path).concurrent_slot(
            f"ga4:{property_id}", max(limit, 1)
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)  # "equal jitter": spread, but never near zero
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _quota_stop(
        self,
        property_id: str,
        report: str,
        verdict: str,
        budget: PropertyBudget,
        waited: float,
        log: _ReportLog,
    ) -> float:
        """Hourly allowance reached: wait (up to max_quota_wait_s) or defer. Daily: fail the property."""
        if verdict == "day":
            remaining = budget.remaining("day")
            raise Ga4QuotaExhausted(
                f"GA4 property {property_id}: daily token budget reached ({remaining} tokens left, reserve "
                f"{self.settings.quota_reserve_fraction:.0%}); report '{report}' and the rest of this property's "
                "reports fail for today, other properties go on",
                property_id=property_id,
                report=report,
            )
        what = {
            "server_errors": "server-error allowance",
            "thresholded": "allowance of potentially thresholded requests (120 an hour)",
        }.get(verdict, "hourly token budget")
        if waited < self.settings.max_quota_wait_s:
            pause = min(self.settings.quota_poll_s, self.settings.max_quota_wait_s - waited)
            log.add("wait_seconds", pause)
            self._sleep(pause)
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

    def _new_log(
        self, property_id: str, report: str, mode: str, start: dt.date | None, end: dt.date | None
    ) -> _ReportLog:
        entry: dict[str, Any] = {
            "run_id": self.settings.run_id,
            "source": "ga4",
            "source_id": property_id,
            "request": report,
            "mode": mode,
            "start_date": start,
            "end_date": end,
            "rows": 0,
            "pages": 0,
            "requests": 0,
            "retries": 0,
            "http_429": 0,
            "splits": 0,
            "subject_to_thresholding": False,
            "data_loss_from_other_row": False,
            "sampled": False,
            "quota_tokens_used": 0,
            "quota_tokens_remaining_hour": None,
            "quota_tokens_remaining_day": None,
            "wait_seconds": 0.0,
            "started_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            "finished_at": None,
            "error": None,
        }
        self.request_log.append(entry)
        return _ReportLog(entry)

    def _finish_log(self, log: _ReportLog, error: str | None = None) -> None:
        log.entry["finished_at"] = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        log.entry["wait_seconds"] = round(float(log.entry["wait_seconds"]), 3)
        if error is not None:
            log.entry["error"] = error


def _has_field(message: Any, name: str) -> bool:
    """Whether a proto-plus message carries ``name`` (proto3 JSON omits what the API did not send)."""
    try:
        return name in message
    except TypeError:  # not a proto-plus message (a test double): present if set
        return getattr(message, name, None) is not None


def _error_payload(exc: Any) -> dict[str, Any]:
    response = getattr(exc, "response", None)
    try:
        data = response.json() if response is not None else {}
    except ValueError:
        data = {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _error_metadata(exc: Any) -> dict[str, str]:
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


def _service_disabled(exc: Any) -> bool:
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


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _cause(exc: Any) -> str:
    return {
        400: "invalid request",
        401: "authentication failed (credentials missing, expired or revoked)",
        403: "permission denied (the credentials have no access to this property)",
        404: "not found (check the property id)",
    }.get(exc.code, "error")


def _hint(name: str, same: set[str], other: set[str], kind: str) -> str:
    import difflib

    if name in other:
        return f"; it is a {'metric' if kind == 'dimension' else 'dimension'}, move it to the other list"
    if name.startswith(("customEvent:", "customUser:")):
        return "; register the custom dimension in GA4 (Admin > Custom definitions) first, or fix its name"
    close = difflib.get_close_matches(name, sorted(same), n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return "; fix the name or remove it (see the property's metadata for valid names)"
