"""The fake HubSpot CRM v3 API, served from the synthetic store.

Routes plug into ``connectors.sandbox.server`` (``routes()``); ``hubspot.HubSpot(access_token=...,
host=server.base_url)`` reaches them exactly as it reaches api.hubapi.com. What it reproduces:

- objects list (``GET /crm/v3/objects/{contacts|deals|companies}``): ``limit`` <= 100 (400 above),
  ``after`` paging whose ``paging.next`` carries ``after`` and a ``link`` on the server's own base URL,
  ``properties``, ``propertiesWithHistory``, ``associations``, ``archived``;
- search (``POST .../search``): filterGroups (EQ/NEQ/LT/LTE/GT/GTE/BETWEEN/IN/NOT_IN/HAS_PROPERTY/
  NOT_HAS_PROPERTY), one sort, ``limit`` <= 200, ``after`` as an offset, ``total``, and a 400 once a
  query pages past 10,000 results; ``hs_object_id`` filters and sorts as a number, so a client can page
  past the cap by keyset (``hs_object_id GT <largest id read>``, sorted by ``hs_object_id``);
- batch read (``POST .../batch/read``), merged ids resolving to their survivor;
- properties (``GET /crm/v3/properties/{type}``), stage-entry properties derived from the store's
  lifecycle stages, and pipelines (``GET /crm/v3/pipelines/{deals|contacts}``);
- a private app's rate limits: a rolling general bucket (100 per 10 s), a search bucket (4 per s) and a
  daily cap, with HubSpot's 429 bodies and ``X-HubSpot-RateLimit-*`` headers on every answer;
  ``Retry-After`` rides on every other 429 of a bucket (deterministic), never on daily ones;
- auth: any non-empty Bearer token, except those listed in ``expired_tokens`` (401
  EXPIRED_AUTHENTICATION) or whose granted scopes in ``token_scopes`` miss the one needed (403
  MISSING_SCOPES naming it).

Choices where HubSpot does not document the behaviour: search requests count against the search
bucket and the daily cap only, and their rate-limit headers describe the search bucket (interval
1000 ms); requests answered 401/403/429 do not consume the buckets; merged (losing) records are
listed nowhere, a batch read of their id answers with the survivor.

Counters (``server.counters()``): ``hubspot.bucket.<general|search|daily>.served`` and
``hubspot.bucket.<...>.429`` besides the core's per-route/status counts.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np

from connectors.sandbox.server import ApiRequest, ApiResponse, Route, SandboxContext, hubspot_error

OBJECT_TYPES = ("contacts", "deals", "companies")
TABLE_OF = {"contacts": "contacts", "deals": "deals", "companies": "companies"}
LAST_MODIFIED = {
    "contacts": "lastmodifieddate",
    "deals": "hs_lastmodifieddate",
    "companies": "hs_lastmodifieddate",
}
# Properties HubSpot returns when a request names none.
DEFAULT_PROPERTIES = {
    "contacts": ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
    "deals": [
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ],
    "companies": ["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
}
# Columns of the store that are record metadata or truth links, never served as properties.
NOT_PROPERTIES = {"id", "archived", "merged_into", "session_id", "user_id", "contact_id"}
SINGULAR = {"contacts": "contact", "deals": "deal", "companies": "company"}
DEAL_STAGES = [  # HubSpot's default sales pipeline, in order: (id, label, probability, closed)
    ("appointmentscheduled", "Appointment Scheduled", 0.2, False),
    ("qualifiedtobuy", "Qualified To Buy", 0.4, False),
    ("presentationscheduled", "Presentation Scheduled", 0.6, False),
    ("decisionmakerboughtin", "Decision Maker Bought-In", 0.8, False),
    ("contractsent", "Contract Sent", 0.9, False),
    ("closedwon", "Closed Won", 1.0, True),
    ("closedlost", "Closed Lost", 0.0, True),
]
EPOCH_ISO = "2020-01-01T00:00:00.000Z"
SEARCH_OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
}


@dataclass
class HubSpotSandboxConfig:
    """Live settings of the fake HubSpot API (``server.config.hubspot``); tests may change fields."""

    general_max: int = 100  # requests per rolling interval (private app, Free/Starter)
    general_interval_ms: int = 10_000
    search_per_second: int = 4
    daily_limit: int = 250_000
    list_page_max: int = 100
    search_page_max: int = 200
    search_result_cap: int = 10_000
    batch_read_max: int = 100
    max_url_length: int = 8_192  # longer request targets get 414, as HubSpot's edge answers
    retry_after_every: int = 2  # the 1st, 3rd, 5th... 429 of a bucket carries Retry-After
    expired_tokens: set[str] = field(default_factory=set)
    token_scopes: dict[str, set[str]] = field(default_factory=dict)  # unlisted tokens hold every scope


def default_config() -> HubSpotSandboxConfig:
    return HubSpotSandboxConfig()


def routes() -> list[Route]:
    obj = r"(?P<object_type>contacts|deals|companies)"
    return [
        Route("hubspot", "POST", rf"/crm/v3/objects/{obj}/search", _search, "hubspot:search"),
        Route("hubspot", "POST", rf"/crm/v3/objects/{obj}/batch/read", _batch_read, "hubspot:batch_read"),
        Route("hubspot", "GET", rf"/crm/v3/objects/{obj}", _list_objects, "hubspot:list"),
        Route("hubspot", "GET", rf"/crm/v3/objects/{obj}/(?P<object_id>[^/]+)", _get_object, "hubspot:get"),
        Route("hubspot", "GET", rf"/crm/v3/properties/{obj}", _properties, "hubspot:properties"),
        Route(
            "hubspot",
            "GET",
            r"/crm/v3/pipelines/(?P<object_type>deals|contacts)",
            _pipelines,
            "hubspot:pipelines",
        ),
        Route(
            "hubspot",
            "POST",
            r"/crm/v4/associations/(?P<object_type>deals|contacts)/(?P<to_type>contacts|deals)/batch/read",
            _associations_batch_read,
            "hubspot:associations_batch_read",
        ),
    ]


# --------------------------------------------------------------------------------------------------
# Rate limits, auth and the headers every answer carries


class _Window:
    """A rolling window: at most ``limit`` accepted requests in any ``interval`` seconds."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        self.rejected = 0

    def _trim(self, now: float, interval: float) -> None:
        while self.times and self.times[0] <= now - interval:
            self.times.popleft()

    def try_take(self, now: float, limit: int, interval: float) -> tuple[bool, int, float]:
        """(accepted, remaining after this request, seconds until a slot frees if rejected)."""
        self._trim(now, interval)
        if len(self.times) >= limit:
            wait = self.times[0] + interval - now if self.times else interval
            return False, 0, max(wait, 0.0)
        self.times.append(now)
        return True, limit - len(self.times), 0.0

    def remaining(self, now: float, limit: int, interval: float) -> int:
        self._trim(now, interval)
        return max(limit - len(self.times), 0)


class _PortalState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.general: dict[str, _Window] = {}
        self.search: dict[str, _Window] = {}
        self.daily: dict[str, tuple[dt.date, int]] = {}
        self.rejections: dict[str, int] = {"general": 0, "search": 0}


def _state(ctx: SandboxContext) -> dict[str, Any]:
    state = ctx.state.setdefault("hubspot", {})
    if "portal" not in state:
        with ctx.lock:
            state.setdefault("portal", _PortalState())
            state.setdefault("cache", {})
    return state


def _cfg(ctx: SandboxContext) -> HubSpotSandboxConfig:
    cfg = ctx.config.hubspot
    if cfg is None:
        cfg = ctx.config.hubspot = default_config()
    return cfg


def _correlation_id() -> str:
    return str(uuid.uuid4())


def _error(
    status: int, category: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> ApiResponse:
    body = hubspot_error(category, message, **extra)
    body["correlationId"] = _correlation_id()
    return ApiResponse(status, body, headers or {})


def _required_scope(req: ApiRequest, object_type: str) -> str:
    if req.path.startswith("/crm/v3/properties/"):
        return f"crm.schemas.{object_type}.read"
    return f"crm.objects.{object_type}.read"


def _guard(req: ApiRequest, ctx: SandboxContext, bucket: str) -> tuple[ApiResponse | None, dict[str, str]]:
    """Auth and rate limits; returns (error answer or None, rate-limit headers for the answer)."""
    cfg = _cfg(ctx)
    auth = req.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    if not token:
        return (
            _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            ),
            {},
        )
    if token in cfg.expired_tokens:
        expired_at = dt.datetime.fromtimestamp(ctx.clock(), dt.UTC) - dt.timedelta(hours=3)
        return (
            _error(
                401,
                "EXPIRED_AUTHENTICATION",
                "The OAuth token used to make this call expired 3 hour(s) ago.",
                context={"expire time": [expired_at.strftime("%a %b %d %H:%M:%S UTC %Y")]},
            ),
            {},
        )
    scope = _required_scope(req, req.path_params.get("object_type", "contacts"))
    granted = cfg.token_scopes.get(token)
    if granted is not None and scope not in granted:
        return (
            _error(
                403,
                "MISSING_SCOPES",
                "This app hasn't been granted all required scopes to make this call. Read more about required "
                "scopes here: https://developers.hubspot.com/scopes.",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": [scope]},
                    }
                ],
                links={"scopes": "https://developers.hubspot.com/scopes"},
            ),
            {},
        )

    state: _PortalState = _state(ctx)["portal"]
    now = ctx.clock()
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    if bucket == "search":
        limit, interval = cfg.search_per_second, 1.0
        policy, message = "SECONDLY", "You have reached your secondly limit."
    else:
        limit, interval = cfg.general_max, cfg.general_interval_ms / 1000.0
        policy, message = "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit."
    with state.lock:
        day, used = state.daily.get(token, (today, 0))
        if day != today:
            day, used = today, 0
        windows = state.search if bucket == "search" else state.general
        window = windows.setdefault(token, _Window())
        if used >= cfg.daily_limit:
            headers = _headers(cfg, used, window.remaining(now, limit, interval), limit, interval)
            ctx.counters.incr("hubspot.bucket.daily.429")
            return (
                _error(
                    429,
                    "RATE_LIMITS",
                    "You have reached your daily limit.",
                    headers,
                    errorType="RATE_LIMIT",
                    policyName="DAILY",
                ),
                headers,
            )
        accepted, remaining, wait = window.try_take(now, limit, interval)
        if not accepted:
            state.rejections[bucket] += 1
            n = state.rejections[bucket]
            headers = _headers(cfg, used, 0, limit, interval)
            if (n - 1) % max(cfg.retry_after_every, 1) == 0:
                headers["Retry-After"] = str(max(1, math.ceil(wait)))
            ctx.counters.incr(f"hubspot.bucket.{bucket}.429")
            return (
                _error(
                    429,
                    "RATE_LIMITS",
                    message,
                    headers,
                    errorType="RATE_LIMIT",
                    policyName=policy,
                ),
                headers,
            )
        used += 1
        state.daily[token] = (day, used)
    ctx.counters.incr(f"hubspot.bucket.{bucket}.served")
    ctx.counters.incr("hubspot.bucket.daily.served")
    return None, _headers(cfg, used, remaining, limit, interval)


def _headers(
    cfg: HubSpotSandboxConfig, used: int, remaining: int, limit: int, interval: float
) -> dict[str, str]:
    return {
        "X-HubSpot-RateLimit-Daily": str(cfg.daily_limit),
        "X-HubSpot-RateLimit-Daily-Remaining": str(max(cfg.daily_limit - used, 0)),
        "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(interval * 1000)),
        "X-HubSpot-RateLimit-Max": str(limit),
        "X-HubSpot-RateLimit-Remaining": str(remaining),
    }


def _with(headers: dict[str, str], response: ApiResponse) -> ApiResponse:
    response.headers = {**headers, **response.headers}
    return response


def _bad_request(message: str, headers: dict[str, str], **extra: Any) -> ApiResponse:
    return _error(400, "VALIDATION_ERROR", message, headers, **extra)


# --------------------------------------------------------------------------------------------------
# Reading the store


@dataclass
class _Schema:
    columns: dict[str, str]  # property name -> DuckDB type (only servable properties)
    created: str
    modified: str

    def value_sql(self, prop: str) -> str:
        col = f'"{prop}"'
        typ = self.columns[prop].upper()
        if typ.startswith("TIMESTAMP"):
            return f"strftime({col}, '%Y-%m-%dT%H:%M:%S.%gZ')"
        if typ == "DATE":
            return f"strftime({col}, '%Y-%m-%d')"
        if typ == "BOOLEAN":
            return f"CASE WHEN {col} THEN 'true' WHEN NOT {col} THEN 'false' END"
        return f"CAST({col} AS VARCHAR)"


def _schema(ctx: SandboxContext, object_type: str) -> _Schema:
    cache = _state(ctx)["cache"]
    key = ("schema", object_type)
    if key not in cache:
        cur = _cursor(ctx)
        rows = cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [TABLE_OF[object_type]],
        ).fetchall()
        columns = {name: typ for name, typ in rows if name not in NOT_PROPERTIES}
        cache[key] = _Schema(columns=columns, created="createdate", modified=LAST_MODIFIED[object_type])
    return cache[key]


def _fingerprint(ctx: SandboxContext, object_type: str) -> tuple[Any, ...]:
    """What the id and merge caches depend on. Which ids exist, are archived or merged is fixed when a
    store is built (``touch_contacts`` changes modification dates and stages only), so the store's
    identity is enough and no query runs on the hot path."""
    return (id(ctx.store), object_type)


_cursors = threading.local()


def _cursor(ctx: SandboxContext) -> Any:
    """One DuckDB cursor per server thread and store (opening one per query costs more than a page)."""
    held = getattr(_cursors, "held", None)
    if held is None or held[0] is not ctx.store:
        held = _cursors.held = (ctx.store, ctx.store.cursor())
    return held[1]


def _live_ids(ctx: SandboxContext, object_type: str, archived: bool) -> np.ndarray:
    """Sorted ids a list request pages over, cached per store (see ``_fingerprint``)."""
    cache = _state(ctx)["cache"]
    fp = _fingerprint(ctx, object_type)
    key = ("ids", object_type, archived)
    hit = cache.get(key)
    if hit is not None and hit[0] == fp:
        return hit[1]
    table = TABLE_OF[object_type]
    not_merged = "AND merged_into IS NULL" if object_type == "contacts" else ""
    cur = _cursor(ctx)
    ids = cur.execute(
        f"SELECT id FROM {table} WHERE archived = ? {not_merged} ORDER BY id", [archived]
    ).fetchnumpy()["id"]
    ids = np.asarray(ids, dtype=np.int64)
    cache[key] = (fp, ids)
    return ids


def _merge_map(ctx: SandboxContext) -> tuple[dict[int, int], dict[int, str]]:
    """(loser id -> survivor id, survivor id -> "id;id" of the ids merged into it)."""
    cache = _state(ctx)["cache"]
    fp = _fingerprint(ctx, "contacts")
    hit = cache.get("merges")
    if hit is not None and hit[0] == fp:
        return hit[1], hit[2]
    cur = _cursor(ctx)
    rows = cur.execute(
        "SELECT id, merged_into FROM contacts WHERE merged_into IS NOT NULL ORDER BY id"
    ).fetchall()
    loser_to_survivor = {int(a): int(b) for a, b in rows}
    # A survivor may itself have been merged later: follow the chain to the live record.
    for loser, survivor in list(loser_to_survivor.items()):
        seen = {loser}
        while survivor in loser_to_survivor and survivor not in seen:
            seen.add(survivor)
            survivor = loser_to_survivor[survivor]
        loser_to_survivor[loser] = survivor
    merged_ids: dict[int, list[int]] = {}
    for loser, survivor in loser_to_survivor.items():
        merged_ids.setdefault(survivor, []).append(loser)
    text = {s: ";".join(str(i) for i in sorted(ls)) for s, ls in merged_ids.items()}
    cache["merges"] = (fp, loser_to_survivor, text)
    return loser_to_survivor, text


def _requested_properties(object_type: str, schema: _Schema, names: list[str] | None) -> list[str]:
    wanted = list(DEFAULT_PROPERTIES[object_type]) if not names else list(names)
    # HubSpot always returns these three, whatever was asked for.
    for always in ("hs_object_id", schema.created, schema.modified):
        if always not in wanted:
            wanted.append(always)
    seen: set[str] = set()
    out = []
    for name in wanted:
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def _fetch_records(
    ctx: SandboxContext,
    object_type: str,
    where: str,
    params: list[Any],
    props: list[str],
    order: str = "id",
    limit: int | None = None,
    offset: int = 0,
    associations: list[str] | None = None,
    archived: bool = False,
) -> list[dict[str, Any]]:
    schema = _schema(ctx, object_type)
    served = [p for p in props if p in schema.columns]
    select = [
        "id",
        f"strftime({schema.created}, '%Y-%m-%dT%H:%M:%S.%gZ')",
        f"strftime({schema.modified}, '%Y-%m-%dT%H:%M:%S.%gZ')",
    ]
    select += [schema.value_sql(p) for p in served]
    wants_contacts = object_type == "deals" and associations and "contacts" in associations
    if wants_contacts:
        select.append("contact_id")
    sql = f"SELECT {', '.join(select)} FROM {TABLE_OF[object_type]} WHERE {where} ORDER BY {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    rows = _cursor(ctx).execute(sql, params).fetchall()
    merged_text: dict[int, str] = {}
    loser_to_survivor: dict[int, int] = {}
    if object_type == "contacts" or wants_contacts:
        loser_to_survivor, merged_text = _merge_map(ctx)
    deals_of: dict[int, list[int]] = {}
    if object_type == "contacts" and associations and "deals" in associations and rows:
        ids = [r[0] for r in rows]
        for deal_id, contact_id in (
            _cursor(ctx)
            .execute(
                "SELECT id, contact_id FROM deals WHERE NOT archived AND contact_id IN (SELECT unnest(?)) ORDER BY id",
                [ids],
            )
            .fetchall()
        ):
            deals_of.setdefault(int(contact_id), []).append(int(deal_id))
    out = []
    n_served = len(served)
    for row in rows:
        rid = int(row[0])
        # Properties the object type does not have are left out, as HubSpot ignores them.
        properties: dict[str, Any] = dict(zip(served, row[3 : 3 + n_served], strict=True))
        properties["hs_object_id"] = str(rid)
        if (
            object_type == "contacts"
            and "hs_merged_object_ids" in props
            and "hs_merged_object_ids" not in schema.columns
        ):
            properties["hs_merged_object_ids"] = merged_text.get(rid)
        record: dict[str, Any] = {
            "id": str(rid),
            "properties": properties,
            "createdAt": row[1],
            "updatedAt": row[2],
            "archived": archived,
        }
        if archived:
            record["archivedAt"] = row[2]
        if wants_contacts:
            contact_id = row[-1]
            if contact_id is not None:
                survivor = loser_to_survivor.get(int(contact_id), int(contact_id))
                record["associations"] = {
                    "contacts": {"results": [{"id": str(survivor), "type": "deal_to_contact"}]}
                }
        if deals_of.get(rid):
            record["associations"] = {
                "deals": {"results": [{"id": str(d), "type": "contact_to_deal"} for d in deals_of[rid]]}
            }
        out.append(record)
    return out


def _split_multi(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(v for v in value.split(",") if v)
    return out


# --------------------------------------------------------------------------------------------------
# Handlers


def _list_objects(req: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    object_type = req.path_params["object_type"]
    error, headers = _guard(req, ctx, "general")
    if error:
        return error
    cfg = _cfg(ctx)
    target = req.path + ("?" + urlencode(req.query, doseq=True) if req.query else "")
    if len(target) > cfg.max_url_length:
        return ApiResponse(
            414,
            b"<html><head><title>414 Request-URI Too Large</title></head><body><center><h1>414 "
            b"Request-URI Too Large</h1></center></body></html>",
            {**headers, "Content-Type": "text/html"},
        )
    try:
        limit = int(req.query_one("limit", "10") or "10")
    except ValueError:
        return _bad_request("Invalid input JSON on line 1: limit must be an integer", headers)
    if limit < 1 or limit > cfg.list_page_max:
        return _bad_request(
            f"Invalid limit {limit}: must be between 1 and {cfg.list_page_max}",
            headers,
            errors=[{"message": f"limit must be less than or equal to {cfg.list_page_max}", "in": "limit"}],
        )
    archived = (req.query_one("archived", "false") or "false").lower() == "true"
    after_raw = req.query_one("after")
    after = 0
    if after_raw:
        try:
            after = int(after_raw)
        except ValueError:
            return _bad_request(f"Invalid after value {after_raw!r}", headers)
    props = _requested_properties(
        object_type, _schema(ctx, object_type), _split_multi(req.query.get("properties"))
    )
    associations = _split_multi(req.query.get("associations"))
    ids = _live_ids(ctx, object_type, archived)
    start = int(np.searchsorted(ids, after, side="left"))
    page_ids = ids[start : start + limit]
    results: list[dict[str, Any]] = []
    if len(page_ids):
        lo, hi = int(page_ids[0]), int(page_ids[-1])
        not_merged = "AND merged_into IS NULL" if object_type == "contacts" else ""
        results = _fetch_records(
            ctx,
            object_type,
            f"id BETWEEN ? AND ? AND archived = ? {not_merged}",
            [lo, hi, archived],
            props,
            associations=associations,
            archived=archived,
        )
    body: dict[str, Any] = {"results": results}
    if start + limit < len(ids):
        next_after = str(int(page_ids[-1]) + 1)
        query = {k: v for k, v in req.query.items() if k != "after"}
        query["after"] = [next_after]
        link = f"{ctx.base_url}{req.path}?{urlencode(query, doseq=True)}"
        body["paging"] = {"next": {"after": next_after, "link": link}}
    if req.query.get("propertiesWithHistory"):
        for record in results:
            record["propertiesWithHistory"] = {
                p: [
                    {
                        "value": record["properties"].get(p),
                        "timestamp": record["updatedAt"],
                        "sourceType": "CRM_UI",
                    }
                ]
                for p in _split_multi(req.query.get("propertiesWithHistory"))
                if record["properties"].get(p) is not None
            }
    return _with(headers, ApiResponse(200, body))


def _get_object(req: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    object_type = req.path_params["object_type"]
    error, headers = _guard(req, ctx, "general")
    if error:
        return error
    try:
        object_id = int(req.path_params["object_id"])
    except ValueError:
        return _error(404, "OBJECT_NOT_FOUND", "resource not found", headers)
    if object_type == "contacts":
        object_id = _merge_map(ctx)[0].get(object_id, object_id)
    archived = (req.query_one("archived", "false") or "false").lower() == "true"
    props = _requested_properties(
        object_type, _schema(ctx, object_type), _split_multi(req.query.get("properties"))
    )
    not_merged = "AND merged_into IS NULL" if object_type == "contacts" else ""
    found = _fetch_records(
        ctx,
        object_type,
        f"id = ? AND archived = ? {not_merged}",
        [object_id, archived],
        props,
        associations=_split_multi(req.query.get("associations")),
        archived=archived,
    )
    if not found:
        return _error(404, "OBJECT_NOT_FOUND", "resource not found", headers)
    return _with(headers, ApiResponse(200, found[0]))


def _parse_value(schema: _Schema, prop: str, raw: Any) -> Any:
    """A filter value in the column's domain (datetimes as epoch milliseconds)."""
    typ = schema.columns.get(prop, "VARCHAR").upper() if prop != "hs_object_id" else "BIGINT"
    if typ.startswith("TIMESTAMP") or typ == "DATE":
        text = str(raw)
        if text.lstrip("-").isdigit():
            return int(text)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return int(parsed.timestamp() * 1000)
    if typ == "BOOLEAN":
        return str(raw).lower() == "true"
    if typ in ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT") or typ.startswith("DECIMAL") or typ == "DOUBLE":
        return float(raw) if "." in str(raw) else int(raw)
    return str(raw)


def _column_sql(schema: _Schema, prop: str) -> str:
    if prop == "hs_object_id":
        return "id"
    typ = schema.columns[prop].upper()
    if typ.startswith("TIMESTAMP") or typ == "DATE":
        return f'epoch_ms("{prop}")'
    return f'"{prop}"'


def _filter_sql(schema: _Schema, f: dict[str, Any], params: list[Any]) -> str:
    prop = f.get("propertyName")
    op = f.get("operator")
    if not prop or (prop not in schema.columns and prop != "hs_object_id"):
        raise ValueError(f"Unknown property {prop!r} in filter")
    if op not in SEARCH_OPERATORS:
        raise ValueError(f"Unsupported filter operator {op!r}")
    col = _column_sql(schema, prop)
    if op == "HAS_PROPERTY":
        return f"{col} IS NOT NULL"
    if op == "NOT_HAS_PROPERTY":
        return f"{col} IS NULL"
    if op in ("IN", "NOT_IN"):
        values = [_parse_value(schema, prop, v) for v in f.get("values") or []]
        params.append(values)
        return f"{'NOT ' if op == 'NOT_IN' else ''}({col} IN (SELECT unnest(?)))"
    if op == "BETWEEN":
        params.append(_parse_value(schema, prop, f.get("value")))
        params.append(_parse_value(schema, prop, f.get("highValue")))
        return f"({col} BETWEEN ? AND ?)"
    sql_op = {"EQ": "=", "NEQ": "<>", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}[op]
    params.append(_parse_value(schema, prop, f.get("value")))
    return f"({col} {sql_op} ?)"


def _search(req: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    object_type = req.path_params["object_type"]
    error, headers = _guard(req, ctx, "search")
    if error:
        return error
    cfg = _cfg(ctx)
    try:
        body = req.json()
    except ValueError:
        return _bad_request("Invalid input JSON on line 1", headers)
    schema = _schema(ctx, object_type)
    limit = int(body.get("limit") or 10)
    if limit < 1 or limit > cfg.search_page_max:
        return _bad_request(
            f"Invalid input: limit must be less than or equal to {cfg.search_page_max}", headers
        )
    try:
        offset = int(body.get("after") or 0)
    except (TypeError, ValueError):
        return _bad_request(f"Invalid after value {body.get('after')!r}", headers)
    if offset >= cfg.search_result_cap:
        # What HubSpot answers once a query pages past its 10,000-result cap.
        return _bad_request(
            f"There was a problem with the request. Cannot page beyond {cfg.search_result_cap} results.",
            headers,
        )
    groups = body.get("filterGroups") or []
    if len(groups) > 5 or any(len(g.get("filters") or []) > 6 for g in groups):
        return _bad_request("Too many filter groups or filters: at most 5 groups of 6 filters", headers)
    params: list[Any] = []
    try:
        group_sql = []
        for group in groups:
            parts = [_filter_sql(schema, f, params) for f in group.get("filters") or []]
            if parts:
                group_sql.append("(" + " AND ".join(parts) + ")")
    except (ValueError, TypeError) as exc:
        return _bad_request(f"There was a problem with the request. {exc}", headers)
    not_merged = "AND merged_into IS NULL" if object_type == "contacts" else ""
    where = f"NOT archived {not_merged}"
    if group_sql:
        where += " AND (" + " OR ".join(group_sql) + ")"
    order = "id"
    sorts = body.get("sorts") or []
    if len(sorts) > 1:
        return _bad_request("Only one sort is supported", headers)
    if sorts:
        sort = sorts[0]
        if isinstance(sort, str):
            name, direction = sort.lstrip("-"), "DESC" if sort.startswith("-") else "ASC"
        else:
            name = sort.get("propertyName")
            direction = (
                "DESC" if str(sort.get("direction", "ASCENDING")).upper().startswith("DESC") else "ASC"
            )
        if name not in schema.columns and name != "hs_object_id":
            return _bad_request(f"Unknown sort property {name!r}", headers)
        order = f"{_column_sql(schema, name)} {direction} NULLS LAST, id {direction}"
    total = int(
        _cursor(ctx)
        .execute(f"SELECT count(*) FROM {TABLE_OF[object_type]} WHERE {where}", params)
        .fetchall()[0][0]
    )
    props = _requested_properties(object_type, schema, list(body.get("properties") or []))
    results = _fetch_records(ctx, object_type, where, params, props, order=order, limit=limit, offset=offset)
    out: dict[str, Any] = {"total": total, "results": results}
    if offset + limit < total:
        out["paging"] = {"next": {"after": str(offset + limit)}}
    return _with(headers, ApiResponse(200, out))


def _batch_read(req: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    object_type = req.path_params["object_type"]
    error, headers = _guard(req, ctx, "general")
    if error:
        return error
    cfg = _cfg(ctx)
    requested_at = _now_iso(ctx)
    try:
        body = req.json()
    except ValueError:
        return _bad_request("Invalid input JSON on line 1", headers)
    inputs = body.get("inputs") or []
    if len(inputs) > cfg.batch_read_max:
        return _bad_request(f"Batch input must contain at most {cfg.batch_read_max} inputs", headers)
    if body.get("idProperty"):
        return _bad_request("idProperty is not supported by the sandbox", headers)
    archived = (req.query_one("archived", "false") or "false").lower() == "true"
    wanted: list[int] = []
    bad: list[str] = []
    for item in inputs:
        try:
            wanted.append(int(str(item.get("id"))))
        except ValueError:
            bad.append(str(item.get("id")))
    resolve = _merge_map(ctx)[0] if object_type == "contacts" else {}
    resolved = [resolve.get(i, i) for i in wanted]
    props = _requested_properties(object_type, _schema(ctx, object_type), list(body.get("properties") or []))
    not_merged = "AND merged_into IS NULL" if object_type == "contacts" else ""
    unique = sorted(set(resolved))
    found = (
        _fetch_records(
            ctx,
            object_type,
            f"id IN (SELECT unnest(?)) AND archived = ? {not_merged}",
            [unique, archived],
            props,
            archived=archived,
        )
        if unique
        else []
    )
    found_ids = {r["id"] for r in found}
    missing = bad + [
        str(orig) for orig, res in zip(wanted, resolved, strict=True) if str(res) not in found_ids
    ]
    out: dict[str, Any] = {
        "status": "COMPLETE",
        "results": found,
        "requestedAt": requested_at,
        "startedAt": requested_at,
        "completedAt": _now_iso(ctx),
    }
    if missing:
        out["numErrors"] = 1
        out["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": f"Could not get some {SINGULAR[object_type].upper()} objects, they may be deleted or "
                "not exist. Check that ids are valid.",
                "context": {"ids": missing},
            }
        ]
        return _with(headers, ApiResponse(207, out))
    return _with(headers, ApiResponse(200, out))


def _now_iso(ctx: SandboxContext) -> str:
    return dt.datetime.fromtimestamp(ctx.clock(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_ENUM_VALUES = {
    "contacts": {
        "lifecyclestage",
        "hs_analytics_source",
        "first_conversion_event_name",
        "recent_conversion_event_name",
    },
    "deals": {"pipeline", "dealstage"},
    "companies": set(),
}


def _property_definitions(ctx: SandboxContext, object_type: str) -> list[dict[str, Any]]:
    schema = _schema(ctx, object_type)
    defs: list[dict[str, Any]] = []
    enum_values: dict[str, list[str]] = {}
    if object_type == "contacts":
        enum_values["lifecyclestage"] = list(ctx.store.lifecycle_stages)
    cur = _cursor(ctx)
    for name in schema.columns:
        if name in _ENUM_VALUES[object_type] and name not in enum_values:
            enum_values[name] = [
                r[0]
                for r in cur.execute(
                    f'SELECT DISTINCT "{name}" FROM {TABLE_OF[object_type]} WHERE "{name}" IS NOT NULL ORDER BY 1'
                ).fetchall()
            ]
    names = list(schema.columns) + ["hs_object_id"]
    if object_type == "contacts" and "hs_merged_object_ids" not in names:
        names.append("hs_merged_object_ids")
    for order, name in enumerate(names):
        typ = schema.columns.get(name, "VARCHAR").upper()
        if name == "hs_object_id":
            htype, field_type = "number", "number"
        elif typ.startswith("TIMESTAMP"):
            htype, field_type = "datetime", "date"
        elif typ == "DATE":
            htype, field_type = "date", "date"
        elif typ == "BOOLEAN":
            htype, field_type = "bool", "booleancheckbox"
        elif typ.startswith("DECIMAL") or typ in ("BIGINT", "INTEGER", "DOUBLE", "HUGEINT", "SMALLINT"):
            htype, field_type = "number", "number"
        elif name in enum_values:
            htype, field_type = "enumeration", "select"
        else:
            htype, field_type = "string", "text"
        if name == "hs_merged_object_ids":
            htype, field_type = "enumeration", "checkbox"
        options = []
        if typ == "BOOLEAN":
            options = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        for i, value in enumerate(enum_values.get(name, [])):
            options.append({"label": _label(value), "value": value, "displayOrder": i, "hidden": False})
        group = {
            "contacts": "contactinformation",
            "deals": "dealinformation",
            "companies": "companyinformation",
        }[object_type]
        if name.startswith("hs_analytics_") or "conversion" in name:
            group = "analyticsinformation" if name.startswith("hs_analytics_") else "conversioninformation"
        label = _label(name)
        if name.startswith("hs_v2_date_entered_"):
            label = f"Date entered '{_label(name.removeprefix('hs_v2_date_entered_'))} (Lifecycle Stage Pipeline)'"
        defs.append(
            {
                "name": name,
                "label": label,
                "type": htype,
                "fieldType": field_type,
                "description": "",
                "groupName": group,
                "options": options,
                "displayOrder": order,
                "calculated": name.startswith("hs_v2_date_entered_") or name == "hs_object_id",
                "externalOptions": False,
                "hasUniqueValue": name == "hs_object_id",
                "hidden": False,
                "hubspotDefined": True,
                "modificationMetadata": {
                    "archivable": False,
                    "readOnlyDefinition": True,
                    "readOnlyValue": True,
                },
                "formField": name in ("email", "firstname", "lastname", "phone", "country"),
                "createdAt": EPOCH_ISO,
                "updatedAt": EPOCH_ISO,
                "archived": False,
            }
        )
    return defs


def _label(name: str) -> str:
    special = {
        "marketingqualifiedlead": "Marketing Qualified Lead",
        "salesqualifiedlead": "Sales Qualified Lead",
        "lifecyclestage": "Lifecycle Stage",
        "hs_object_id": "Record ID",
    }
    if name in special:
        return special[name]
    return name.removeprefix("hs_").replace("_", " ").strip().capitalize()


def _properties(req: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    object_type = req.path_params["object_type"]
    error, headers = _guard(req, ctx, "general")
    if error:
        return error
    archived = (req.query_one("archived", "false") or "false").lower() == "true"
    results = [] if archived else _property_definitions(ctx, object_type)
    return _with(headers, ApiResponse(200, {"results": results}))


def _pipelines(req: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    object_type = req.path_params["object_type"]
    error, headers = _guard(req, ctx, "general")
    if error:
        return error
    if object_type == "deals":
        used = {
            r[0]
            for r in _cursor(ctx)
            .execute("SELECT DISTINCT dealstage FROM deals WHERE dealstage IS NOT NULL")
            .fetchall()
        }
        known = {s[0] for s in DEAL_STAGES}
        stages_spec = list(DEAL_STAGES) + [(s, _label(s), 0.5, False) for s in sorted(used - known)]
        stages = [
            _stage(
                stage_id, label, i, {"isClosed": "true" if closed else "false", "probability": f"{prob:.1f}"}
            )
            for i, (stage_id, label, prob, closed) in enumerate(stages_spec)
        ]
        pipeline = {"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "stages": stages}
    else:
        lifecycle = list(ctx.store.lifecycle_stages)
        stages = [_stage(stage, _label(stage), i, {"isClosed": "false"}) for i, stage in enumerate(lifecycle)]
        pipeline = {
            "id": "contacts-lifecycle-pipeline",
            "label": "Lifecycle Stage Pipeline",
            "displayOrder": 0,
            "stages": stages,
        }
    pipeline.update({"createdAt": EPOCH_ISO, "updatedAt": EPOCH_ISO, "archived": False})
    return _with(headers, ApiResponse(200, {"results": [pipeline]}))


def _stage(stage_id: str, label: str, order: int, metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "id": stage_id,
        "label": label,
        "displayOrder": order,
        "metadata": metadata,
        "createdAt": EPOCH_ISO,
        "updatedAt": EPOCH_ISO,
        "archived": False,
        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
    }


def _associations_batch_read(req: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    """v4 batch read of associations (deals <-> contacts), as search answers carry none."""
    from_type, to_type = req.path_params["object_type"], req.path_params["to_type"]
    error, headers = _guard(req, ctx, "general")
    if error:
        return error
    if from_type == to_type:
        return _bad_request(f"No associations between {from_type} and {to_type}", headers)
    cfg = _cfg(ctx)
    started = _now_iso(ctx)
    try:
        inputs = req.json().get("inputs") or []
        wanted = [int(str(i.get("id"))) for i in inputs]
    except (ValueError, AttributeError):
        return _bad_request("Invalid input JSON on line 1", headers)
    if len(wanted) > cfg.batch_read_max:
        return _bad_request(f"Batch input must contain at most {cfg.batch_read_max} inputs", headers)
    loser_to_survivor, _ = _merge_map(ctx)
    cur = _cursor(ctx)
    links: dict[int, list[int]] = {}
    if from_type == "deals":
        rows = cur.execute(
            "SELECT id, contact_id FROM deals WHERE id IN (SELECT unnest(?)) AND contact_id IS NOT NULL",
            [wanted],
        ).fetchall()
        for deal_id, contact_id in rows:
            links.setdefault(int(deal_id), []).append(loser_to_survivor.get(int(contact_id), int(contact_id)))
        type_id = 3
    else:
        resolved = {loser_to_survivor.get(i, i): i for i in wanted}
        rows = cur.execute(
            "SELECT COALESCE(c.merged_into, d.contact_id), d.id FROM deals d "
            "LEFT JOIN contacts c ON c.id = d.contact_id WHERE NOT d.archived",
        ).fetchall()
        for contact_id, deal_id in rows:
            if contact_id is not None and int(contact_id) in resolved:
                links.setdefault(resolved[int(contact_id)], []).append(int(deal_id))
        type_id = 4
    results = [
        {
            "from": {"id": str(i)},
            "to": [
                {
                    "toObjectId": t,
                    "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}],
                }
                for t in sorted(set(links[i]))
            ],
        }
        for i in wanted
        if links.get(i)
    ]
    body = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso(ctx)}
    return _with(headers, ApiResponse(200, body))
