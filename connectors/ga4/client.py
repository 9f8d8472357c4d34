"""GA4 Data API client: validated, quota-aware, retrying, complete reports as Arrow batches.

Built on the official ``google-analytics-data`` SDK over REST. One ``Ga4Client`` serves several
properties; ``fetch_report`` streams one report for one property and date window page by page, so
memory stays flat however many rows the report has.

Beside this module: ``settings.py`` holds ``Ga4Settings`` and the page size, ``quota.py`` the per-property
quota budget, ``retry.py`` one API call with its retries and quota stops, ``responses.py`` reads error
answers, ``request_log.py`` the request-log entry. This module keeps credentials, metadata and time-zone
reads, validation, and paging (windows halved and days split when GA4 folds rows or samples).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from connectors.ga4.convert import response_to_batch
from connectors.ga4.errors import Ga4ConfigError, Ga4FetchError
from connectors.ga4.quota import USER_METRICS, PropertyBudget
from connectors.ga4.request_log import ReportLog, finish_log, new_log
from connectors.ga4.retry import call
from connectors.ga4.settings import ANALYTICS_SCOPE, Ga4Settings, page_limit
from connectors.ga4.specs import ReportSpec, check_specs
from connectors.ga4.windows import DateWindow

# Re-exported: callers import these from ``connectors.ga4.client`` as before the split.
__all__ = ["Ga4Client", "Ga4Settings", "PropertyBudget", "page_limit"]


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
            finish_log(log, error=str(exc))
            raise
        finish_log(log)
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
                finish_log(log, error=str(exc))
                raise
            finish_log(log)
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
            finish_log(log, error=str(exc))
            raise
        except GeneratorExit:
            finish_log(log, error="consumer stopped reading")
            raise
        finish_log(log)

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

    def _run(self, property_id: str, report: str, request: Any, log: ReportLog) -> Any:
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
        log: ReportLog,
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
        log: ReportLog,
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
        log: ReportLog,
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

    def _log_flags(self, log: ReportLog, response: Any) -> None:
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
        log: ReportLog,
        *,
        use_budget: bool,
        potentially_thresholded: bool = False,
    ) -> Any:
        return call(
            self.settings,
            self.budget(property_id),
            self._sleep,
            property_id,
            report,
            fn,
            log,
            use_budget=use_budget,
            potentially_thresholded=potentially_thresholded,
        )

    def _new_log(
        self, property_id: str, report: str, mode: str, start: dt.date | None, end: dt.date | None
    ) -> ReportLog:
        return new_log(self.request_log, self.settings.run_id, property_id, report, mode, start, end)


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
