"""HubSpot CRM extraction through ``hubspot-api-client``: full, incremental and archived passes.

- First loads page the list endpoints (100 a page, ``after`` cursor).
- Incremental loads search on the last-modified property in a window ``[since, until)``, 200 a page,
  sorted ascending. A window whose ``total`` passes the search cap (10,000) is halved until each part
  fits. A single millisecond cannot be halved and may hold more than the cap (bulk imports): it is read
  by id keyset, ``hs_object_id GT <largest id read>`` sorted by ``hs_object_id``, each query paged up to
  the cap and the next one starting past the largest id it read, until a query holds no more than the
  cap. ``until`` defaults to the run's start and is never passed, so the next run's ``since`` = this
  run's ``until`` leaves no gap. If a window's ``total`` shrinks while it is paged (a record was modified
  meanwhile and left it, shifting the offsets), the window is read again (a one-millisecond window only
  past the largest id read before the shift); ids already yielded in the run are not yielded twice.
- The archived pass lists ``archived=true``; merged records come out as rows of their own id with
  ``merged_into`` = the survivor (from the survivor's ``hs_merged_object_ids``).
- Every call goes through one process-wide limiter per portal and token (``ratelimit.shared_limiter``)
  and one retry loop here. The SDK's urllib3 retries are switched off on purpose (``Retry(total=0)``):
  a second, silent layer would retry 429s behind the limiter's back and end in ``MaxRetryError``.
  Connection errors (which urllib3 then raises as ``MaxRetryError``/``ProtocolError``) are retried
  here and, when retries run out, reported as ``HubSpotFetchError`` naming the cause.

Responses are read with ``_preload_content=False`` and parsed here: the SDK's model layer would turn a
malformed body into an unrelated validation error, and building models for a million records costs
more than the rate limit leaves.

Beside this module: ``records.py`` turns a page of records into an Arrow batch, ``responses.py`` reads
error bodies and headers, ``request_log.py`` holds the request-log entry and the page prefetcher.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import urllib3
from urllib3.util.retry import Retry

from connectors.hubspot.ratelimit import GENERAL, SEARCH, PortalRateLimiter, backoff_seconds, shared_limiter
from connectors.hubspot.records import (
    PIPELINES_SCHEMA,
    PROPERTIES_SCHEMA,
    iso,
    to_batch,
    to_ms,
)
from connectors.hubspot.request_log import RequestLog, prefetch
from connectors.hubspot.responses import API_EXCEPTIONS, auth_error, json_field, retry_after_seconds, short
from connectors.hubspot.settings import (
    BASE_PROPERTIES,
    LAST_MODIFIED,
    OBJECT_TYPES,
    STAGE_DATE_PREFIX,
    HubSpotConfigError,
    HubSpotFetchError,
    HubSpotQuotaError,
    HubSpotSettings,
)

log = logging.getLogger(__name__)


class _Transient(Exception):
    """A failure worth another attempt (5xx, dropped connection, malformed body)."""


class HubSpotClient:
    """Extracts one portal's CRM objects; see the module docstring. Not for use from several threads."""

    def __init__(self, settings: HubSpotSettings, limiter: PortalRateLimiter | None = None) -> None:
        settings.validate()
        self.settings = settings
        self.limiter = limiter or shared_limiter(
            settings.host,
            settings.access_token,
            settings.general_max_requests,
            settings.general_interval_seconds,
            settings.search_requests_per_second,
            settings.limiter_margin_seconds,
            budget_path=settings.rate_budget_path,
        )
        import hubspot

        self._sdk = hubspot.HubSpot(
            access_token=settings.access_token,
            host=settings.host.rstrip("/"),
            # No second retry layer: our loop sees every answer, the limiter stays in charge.
            retry=Retry(
                total=0,
                connect=0,
                read=0,
                redirect=0,
                status=0,
                other=0,
                respect_retry_after_header=False,
                raise_on_status=False,
                raise_on_redirect=False,
            ),
        )
        self._apis: dict[tuple[str, str], Any] = {}
        self._property_cache: dict[str, list[dict[str, Any]]] = {}
        self.request_log: list[dict[str, Any]] = []
        # The cut each extract ran up to (exclusive), and the data cursor: the largest last-modified
        # instant of the records it read (the next incremental run's ``since``; see ``extract``).
        self.last_until: dict[str, dt.datetime] = {}
        self.max_updated_at: dict[str, dt.datetime] = {}
        self._rng = random.Random()

    # ------------------------------------------------------------------------------------------
    # public API

    def extract(
        self,
        object_type: str,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Records of ``object_type`` page by page; ``since=None`` is a full load (list endpoint).

        ``since`` is a cursor taken from the data (the largest last-modified instant already loaded,
        inclusive): the search window starts ``incremental_overlap_seconds`` before it, so a record edited
        just before the previous cut but indexed only after it is read now. Records in the overlap come
        again; the loader's upsert by id makes that idempotent (``overlap_rows`` in the request log counts
        them). ``max_updated_at[object_type]`` is the largest last-modified instant read.
        """
        self._check_object(object_type)
        run_start = dt.datetime.now(dt.UTC)
        until = min(until, run_start) if until is not None else run_start
        if until.tzinfo is None:
            until = until.replace(tzinfo=dt.UTC)
        self.last_until[object_type] = until
        props = self.object_properties(object_type)
        mode = "full" if since is None else "incremental"
        read_from: dt.datetime | None = None
        if since is not None:
            read_from = since - dt.timedelta(seconds=self.settings.incremental_overlap_seconds)
        entry = RequestLog(
            self.settings.run_id,
            self.settings.portal_id,
            object_type,
            mode,
            start_date=None if read_from is None else iso(to_ms(read_from)),
            end_date=iso(to_ms(until)),
        )
        if since is None or read_from is None:
            pages = self._list_pages(object_type, props, archived=False, entry=entry)
            yield from self._batches(object_type, pages, entry)
            return
        entry.overlap_seconds = self.settings.incremental_overlap_seconds
        pages = self._incremental_pages(object_type, props, to_ms(read_from), to_ms(until), entry)
        yield from self._batches(object_type, pages, entry, overlap_before=since)

    def extract_archived(self, object_type: str) -> Iterator[pa.RecordBatch]:
        """Archived (deleted) records, ``archived=True``."""
        self._check_object(object_type)
        props = [p for p in ("hs_object_id", "createdate", LAST_MODIFIED[object_type])]
        entry = RequestLog(self.settings.run_id, self.settings.portal_id, object_type, "archived")
        pages = self._list_pages(object_type, props, archived=True, entry=entry)
        yield from self._batches(object_type, pages, entry)

    def properties(self, object_type: str) -> pa.RecordBatch:
        self._check_object(object_type)
        defs = self._property_definitions(object_type)
        rows = {
            "portal_id": [self.settings.portal_id] * len(defs),
            "object_type": [object_type] * len(defs),
            "name": [d.get("name") for d in defs],
            "label": [d.get("label") for d in defs],
            "type": [d.get("type") for d in defs],
            "field_type": [d.get("fieldType") for d in defs],
            "group_name": [d.get("groupName") for d in defs],
        }
        return pa.RecordBatch.from_pydict(rows, schema=PROPERTIES_SCHEMA)

    def account_details(self) -> dict[str, Any]:
        """The portal's account settings (``GET /account-info/v3/details``): ``portalId``, ``timeZone`` (the
        zone the portal's days are cut in; record it with transforms.raw_load.record_hubspot_portal),
        ``companyCurrency``, ``uiDomain``, ``dataHostingLocation``. One general-bucket request, logged."""
        entry = RequestLog(self.settings.run_id, self.settings.portal_id, "account_details", "metadata")
        # The SDK has no account-info API: its generated client's call_api, with the token it holds.
        api_client = self._api("contacts", "basic_api").api_client

        def get_account_details(**kwargs: Any) -> Any:
            return api_client.call_api(
                "/account-info/v3/details",
                "GET",
                header_params={"Accept": "application/json"},
                auth_settings=["oauth2"],
                response_types_map={},
                _return_http_data_only=True,
                **kwargs,
            )

        try:
            return self._call(entry, GENERAL, get_account_details)
        finally:
            self._finish(entry)

    def pipelines(self, object_type: str) -> pa.RecordBatch:
        if object_type not in ("deals", "contacts"):
            raise HubSpotConfigError(f"HubSpot pipelines exist for deals and contacts, not {object_type!r}")
        entry = RequestLog(
            self.settings.run_id, self.settings.portal_id, f"pipelines_{object_type}", "metadata"
        )
        try:
            api = self._api("pipelines", "pipelines_api")
            data = self._call(entry, GENERAL, api.get_all, object_type=object_type)
            rows: dict[str, list[Any]] = {name: [] for name in PIPELINES_SCHEMA.names}
            for pipeline in data.get("results", []):
                for stage in sorted(pipeline.get("stages", []), key=lambda s: s.get("displayOrder", 0)):
                    meta = stage.get("metadata") or {}
                    probability = meta.get("probability")
                    rows["portal_id"].append(self.settings.portal_id)
                    rows["object_type"].append(object_type)
                    rows["pipeline_id"].append(pipeline.get("id"))
                    rows["pipeline_label"].append(pipeline.get("label"))
                    rows["stage_id"].append(stage.get("id"))
                    rows["stage_label"].append(stage.get("label"))
                    rows["display_order"].append(stage.get("displayOrder"))
                    rows["is_closed"].append(str(meta.get("isClosed", "false")).lower() == "true")
                    rows["probability"].append(float(probability) if probability not in (None, "") else None)
            entry.rows = len(rows["stage_id"])
            entry.pages = 1
            return pa.RecordBatch.from_pydict(rows, schema=PIPELINES_SCHEMA)
        except Exception as exc:
            entry.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._finish(entry)

    def stage_date_properties(self) -> list[str]:
        """The ``hs_v2_date_entered_<stage>`` properties this portal has (discovered, never assumed)."""
        return [
            d["name"]
            for d in self._property_definitions("contacts")
            if d["name"].startswith(STAGE_DATE_PREFIX)
        ]

    def object_properties(self, object_type: str) -> list[str]:
        """Property names requested for ``object_type``: the base set, discovered stage dates, extras."""
        names = list(BASE_PROPERTIES[object_type])
        if object_type == "contacts":
            names += self.stage_date_properties()
        names += list(self.settings.extra_properties.get(object_type, ()))
        return list(dict.fromkeys(names))

    # ------------------------------------------------------------------------------------------
    # pages

    def _list_pages(
        self,
        object_type: str,
        props: list[str],
        archived: bool,
        entry: RequestLog,
    ) -> Iterator[list[dict[str, Any]]]:
        api = self._api(object_type, "basic_api")
        url_props, body_props = self._split_for_url(object_type, props)
        associations = ["contacts"] if object_type == "deals" else None
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "limit": self.settings.list_page_size,
                "properties": url_props,
                "archived": archived,
            }
            if after:
                kwargs["after"] = after
            if associations:
                kwargs["associations"] = associations
            data = self._call(entry, GENERAL, api.get_page, **kwargs)
            records = data.get("results") or []
            if body_props and records:
                self._complete_properties(object_type, records, body_props, archived, entry)
            entry.pages += 1
            yield records
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return

    def _incremental_pages(
        self, object_type: str, props: list[str], since_ms: int, until_ms: int, entry: RequestLog
    ) -> Iterator[list[dict[str, Any]]]:
        seen: set[str] = set()
        windows = [(since_ms, until_ms)]
        while windows:
            lo, hi = windows.pop(0)
            if lo >= hi:
                continue
            if hi - lo == 1:
                yield from self._scan_instant(object_type, props, lo, entry, seen)
                continue
            outcome = yield from self._scan_window(object_type, props, lo, hi, entry, seen)
            if outcome == "split":
                mid = lo + (hi - lo) // 2
                entry.splits += 1
                windows[0:0] = [(lo, mid), (mid, hi)]

    @staticmethod
    def _search_body(
        props: list[str], filters: list[dict[str, str]], sort: str, offset: int, limit: int
    ) -> dict[str, Any]:
        return {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": props,
            "limit": limit,
            "after": str(offset),
        }

    def _fresh(
        self, object_type: str, records: list[dict[str, Any]], entry: RequestLog, seen: set[str]
    ) -> list[dict[str, Any]]:
        """The page's records not yielded before in this run (deals with their contacts attached)."""
        if object_type == "deals" and records:
            self._attach_contacts(records, entry)
        fresh = [r for r in records if r["id"] not in seen]
        seen.update(r["id"] for r in fresh)
        entry.pages += 1
        return fresh

    def _scan_window(
        self, object_type: str, props: list[str], lo: int, hi: int, entry: RequestLog, seen: set[str]
    ) -> Generator[list[dict[str, Any]], None, str]:
        """Yields the pages of ``[lo, hi)`` (wider than 1 ms); returns "done" or "split" (past the cap)."""
        api = self._api(object_type, "search_api")
        lmd = LAST_MODIFIED[object_type]
        cap = self.settings.search_result_cap
        size = self.settings.search_page_size
        filters = [
            {"propertyName": lmd, "operator": "GTE", "value": str(lo)},
            {"propertyName": lmd, "operator": "LT", "value": str(hi)},
        ]
        for _attempt in range(5):
            offset = 0
            first_total: int | None = None
            restarted = False
            while True:
                body = self._search_body(props, filters, lmd, offset, size)
                data = self._call(entry, SEARCH, api.do_search, public_object_search_request=body)
                total = int(data.get("total") or 0)
                if first_total is None:
                    first_total = total
                    if total > cap:
                        return "split"
                elif total < first_total:
                    # Something left the window while we paged: offsets shifted, read it again.
                    restarted = True
                    break
                yield self._fresh(object_type, data.get("results") or [], entry, seen)
                after = ((data.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
                offset = int(after)
                if offset >= cap:  # cannot happen when total <= cap; never page into the 400
                    break
            if not restarted:
                return "done"
        raise HubSpotFetchError(
            f"HubSpot {object_type} window {iso(lo)}..{iso(hi)} kept changing while it was read (5 tries)"
        )

    def _scan_instant(
        self, object_type: str, props: list[str], at: int, entry: RequestLog, seen: set[str]
    ) -> Iterator[list[dict[str, Any]]]:
        """Yields the pages of the one-millisecond window ``[at, at + 1)`` in id order.

        Such a window cannot be halved and may hold more than the cap (a bulk import stamps all its
        records with one instant). Each query adds ``hs_object_id GT <largest id read>`` and sorts by
        ``hs_object_id``: it is paged up to the cap, then the next query starts past the largest id it
        read, until one query holds no more than the cap and is read to its end. A ``total`` that
        shrinks mid-query means records left the window and shifted the offsets: the next query starts
        past the largest id of the pages read before the shift, so nothing behind it is skipped.
        """
        api = self._api(object_type, "search_api")
        lmd = LAST_MODIFIED[object_type]
        cap = self.settings.search_result_cap
        size = self.settings.search_page_size
        window = [
            {"propertyName": lmd, "operator": "GTE", "value": str(at)},
            {"propertyName": lmd, "operator": "LT", "value": str(at + 1)},
        ]
        past_id: int | None = None  # every record of the window up to this id has been yielded
        crowded = False
        stalls = 0
        while True:
            filters = list(window)
            if past_id is not None:
                filters.append({"propertyName": "hs_object_id", "operator": "GT", "value": str(past_id)})
            offset = 0
            first_total: int | None = None
            read_up_to = past_id
            finished = False
            while offset < cap:
                # The last page of a query never reaches past the cap, whatever the page size.
                limit = min(size, cap - offset)
                body = self._search_body(props, filters, "hs_object_id", offset, limit)
                data = self._call(entry, SEARCH, api.do_search, public_object_search_request=body)
                total = int(data.get("total") or 0)
                if first_total is None:
                    first_total = total
                    if total > cap and not crowded:
                        crowded = True
                        entry.crowded_instants += 1
                elif total < first_total:
                    break  # offsets shifted: restart past read_up_to
                records = data.get("results") or []
                yield self._fresh(object_type, records, entry, seen)
                if records:
                    largest = max(int(r["id"]) for r in records)
                    read_up_to = largest if read_up_to is None else max(read_up_to, largest)
                after = ((data.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    # The whole result set was read only if it fitted under the cap.
                    finished = first_total <= cap
                    break
                offset = int(after)
            if finished:
                return
            if read_up_to == past_id:
                stalls += 1
                if stalls >= 5:
                    raise HubSpotFetchError(
                        f"HubSpot {object_type} instant {iso(at)} kept changing while it was read "
                        f"(5 queries past id {past_id} made no progress)"
                    )
            else:
                stalls = 0
            past_id = read_up_to
            entry.keyset_restarts += 1

    def _complete_properties(
        self,
        object_type: str,
        records: list[dict[str, Any]],
        body_props: list[str],
        archived: bool,
        entry: RequestLog,
    ) -> None:
        """Reads the properties that did not fit the list URL through batch read (a POST body)."""
        api = self._api(object_type, "batch_api")
        by_id = {r["id"]: r for r in records}
        ids = list(by_id)
        for start in range(0, len(ids), self.settings.batch_size):
            chunk = ids[start : start + self.settings.batch_size]
            body = {
                "inputs": [{"id": i} for i in chunk],
                "properties": body_props,
                "propertiesWithHistory": [],
            }
            data = self._call(
                entry, GENERAL, api.read, batch_read_input_simple_public_object_id=body, archived=archived
            )
            for result in data.get("results") or []:
                target = by_id.get(result.get("id"))
                if target is not None:
                    target.setdefault("properties", {}).update(result.get("properties") or {})

    def _attach_contacts(self, deals: list[dict[str, Any]], entry: RequestLog) -> None:
        """Search answers carry no associations: read deal -> contact links in batches (v4)."""
        api = self._api("associations_v4", "batch_api")
        for start in range(0, len(deals), self.settings.batch_size):
            chunk = deals[start : start + self.settings.batch_size]
            body = {"inputs": [{"id": d["id"]} for d in chunk]}
            data = self._call(
                entry,
                GENERAL,
                api.get_page,
                from_object_type="deals",
                to_object_type="contacts",
                batch_input_public_fetch_associations_batch_request=body,
            )
            links: dict[str, list[str]] = {}
            for result in data.get("results") or []:
                from_id = str((result.get("from") or {}).get("id"))
                links[from_id] = [str(t.get("toObjectId")) for t in result.get("to") or []]
            for deal in chunk:
                deal["associations"] = {
                    "contacts": {
                        "results": [{"id": c, "type": "deal_to_contact"} for c in links.get(deal["id"], [])]
                    }
                }

    def _split_for_url(self, object_type: str, props: list[str]) -> tuple[list[str], list[str]]:
        """(properties that fit the list URL, the rest for a batch read)."""
        base = len(self.settings.host) + len(f"/crm/v3/objects/{object_type}?limit=100&after=") + 40
        if object_type == "deals":
            base += len("&associations=contacts")
        budget = self.settings.max_url_length - base
        url_props: list[str] = []
        used = 0
        for i, name in enumerate(props):
            cost = len("&properties=") + len(quote(name, safe=""))
            if used + cost > budget:
                return url_props, props[i:]
            url_props.append(name)
            used += cost
        return url_props, []

    # ------------------------------------------------------------------------------------------
    # records -> batches

    def _batches(
        self,
        object_type: str,
        pages: Iterator[list[dict[str, Any]]],
        entry: RequestLog,
        overlap_before: dt.datetime | None = None,
    ) -> Iterator[pa.RecordBatch]:
        fetched = prefetch(pages, self.settings.prefetch_pages)
        if overlap_before is not None and overlap_before.tzinfo is None:
            overlap_before = overlap_before.replace(tzinfo=dt.UTC)
        try:
            for records in fetched:
                batch = to_batch(object_type, self.settings.portal_id, records)
                entry.rows += batch.num_rows
                fetched_rows = pc.is_null(batch.column("merged_into"))  # rows of the API, not derived
                if batch.num_rows:
                    largest = pc.max(pc.filter(batch.column("updated_at"), fetched_rows)).as_py()
                    current = self.max_updated_at.get(object_type)
                    if largest is not None and (current is None or largest > current):
                        self.max_updated_at[object_type] = largest
                    if overlap_before is not None:
                        # At or before the cursor: already loaded by an earlier run, read again.
                        early = pc.and_(
                            fetched_rows, pc.less_equal(batch.column("updated_at"), overlap_before)
                        )
                        entry.overlap_rows += int(pc.sum(early).as_py() or 0)
                yield batch
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                entry.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            fetched.close()
            self._finish(entry)

    # ------------------------------------------------------------------------------------------
    # calls

    def _property_definitions(self, object_type: str) -> list[dict[str, Any]]:
        if object_type not in self._property_cache:
            entry = RequestLog(
                self.settings.run_id, self.settings.portal_id, f"properties_{object_type}", "metadata"
            )
            try:
                api = self._api("properties", "core_api")
                data = self._call(entry, GENERAL, api.get_all, object_type=object_type, archived=False)
                self._property_cache[object_type] = list(data.get("results") or [])
                entry.rows = len(self._property_cache[object_type])
                entry.pages = 1
            except Exception as exc:
                entry.error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                self._finish(entry)
        return self._property_cache[object_type]

    def _api(self, group: str, name: str) -> Any:
        # The SDK builds a new ApiClient (and connection pool) on every attribute access: keep one.
        key = (group, name)
        if key not in self._apis:
            crm = self._sdk.crm
            holder = crm.associations.v4 if group == "associations_v4" else getattr(crm, group)
            self._apis[key] = getattr(holder, name)
        return self._apis[key]

    def _call(self, entry: RequestLog, bucket: str, fn: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        """One logical request: limiter, attempt, classify, retry. Returns the parsed JSON body."""
        s = self.settings
        failures = 0
        rate_limited = 0
        while True:
            if self.limiter.daily_remaining == 0:
                raise HubSpotQuotaError(
                    f"HubSpot portal {s.portal_id}: the daily request limit is spent "
                    f"(X-HubSpot-RateLimit-Daily-Remaining: 0); the run can resume after it resets"
                )
            entry.wait_seconds += self.limiter.acquire(bucket)
            sent = time.monotonic()
            entry.requests += 1
            try:
                try:
                    response = fn(
                        **kwargs, _preload_content=False, _request_timeout=s.request_timeout_seconds
                    )
                    raw = response.data
                    headers = dict(response.headers)
                    response.release_conn()
                except API_EXCEPTIONS as exc:
                    status = int(getattr(exc, "status", 0) or 0)
                    headers = dict(getattr(exc, "headers", None) or {})
                    body = getattr(exc, "body", None)
                    if status:
                        self.limiter.observe(bucket, headers, sent)
                    if status == 429:
                        rate_limited += 1
                        entry.http_429 += 1
                        policy = json_field(body, "policyName")
                        if policy == "DAILY":
                            raise HubSpotQuotaError(
                                f"HubSpot portal {s.portal_id}: the daily request limit is reached "
                                f"(429 policy DAILY); the run can resume after it resets"
                            ) from None
                        if rate_limited > s.max_rate_limit_retries:
                            raise HubSpotFetchError(
                                f"HubSpot kept answering 429 ({policy or 'rate limit'}) after {rate_limited} waits",
                                429,
                            ) from None
                        retry_after = retry_after_seconds(headers)
                        pause = (
                            retry_after
                            if retry_after is not None
                            else backoff_seconds(
                                rate_limited - 1, s.backoff_base_seconds, s.backoff_max_seconds, self._rng
                            )
                        )
                        self.limiter.block(bucket, pause)
                        entry.retries += 1
                        continue
                    if status in (401, 403):
                        raise auth_error(status, body) from None
                    if status == 0 or status >= 500:
                        raise _Transient(f"HTTP {status or 'error'}: {short(body)}") from None
                    raise HubSpotFetchError(
                        f"HubSpot answered {status} to {getattr(fn, '__name__', 'a request')}: {short(body)}",
                        status,
                    ) from None
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    cause = getattr(exc, "reason", None) or exc
                    raise _Transient(f"connection failed ({type(cause).__name__}: {cause})") from None
                self.limiter.observe(bucket, headers, sent)
                daily = headers.get("X-HubSpot-RateLimit-Daily-Remaining") or headers.get(
                    "x-hubspot-ratelimit-daily-remaining"
                )
                if daily is not None and daily.isdigit():
                    entry.quota_tokens_remaining_day = int(daily)
                try:
                    return json.loads(raw)
                except ValueError:
                    raise _Transient(f"malformed JSON body ({len(raw)} bytes)") from None
            except _Transient as transient:
                failures += 1
                if failures > s.max_retries:
                    raise HubSpotFetchError(
                        f"HubSpot request {getattr(fn, '__name__', '')} failed {failures} times; last: {transient}"
                    ) from None
                entry.retries += 1
                log.info("HubSpot request failed (%s); retry %d of %d", transient, failures, s.max_retries)
                time.sleep(
                    backoff_seconds(failures - 1, s.backoff_base_seconds, s.backoff_max_seconds, self._rng)
                )

    def _finish(self, entry: RequestLog) -> None:
        entry.finished_at = dt.datetime.now(dt.UTC)
        self.request_log.append(entry.as_dict())

    @staticmethod
    def _check_object(object_type: str) -> None:
        if object_type not in OBJECT_TYPES:
            raise HubSpotConfigError(
                f"HubSpot object type {object_type!r} is not one of {list(OBJECT_TYPES)}"
            )
