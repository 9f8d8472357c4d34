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
- account details (``GET /account-info/v3/details``, hubspot_account.py): portal id, time zone, currency;
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

import base64
import datetime as dt
import math
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np

from connectors.sandbox import hubspot_account
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
    search_per_second: int = 5  # HubSpot documents 5 requests per second for the search endpoints
    daily_limit: int = 250_000
    list_page_max: int = 100
    search_page_max: int = 200
    search_result_cap: int = 10_000
    batch_read_max: int = 100
    max_url_length: int = 8_192  # longer request targets get 414, as HubSpot's edge answers
    retry_after_every: int = 2  # the 1st, 3rd, 5th... 429 of a bucket carries Retry-After
    expired_tokens: set[str] = field(default_factory=set)
    token_scopes: dict[str, set[str]] = field(default_factory=dict)  # unlisted tokens hold every scope
    # "granular": errors[].context.requiredGranularScopes (today's private apps); "legacy": the older
    # shape some portals still answer, errors[].context.requiredScopes with the old scope names.
    scope_error_shape: str = "granular"
    # Search is eventually consistent: an edit (or a create) stamped at or after the store's end reaches
    # the search index this many seconds after its lastmodifieddate, on the server's clock. Until then
    # search serves the record's previous version (kept by the store's touch helpers) or nothing.
    search_lag_seconds: float = 3.0
    # Per-record lag in seconds, {(object_type, id): seconds}: an incident that holds one record back
    # while newer edits are indexed (what a cursor without an overlap window loses).
    search_lag_overrides: dict[tuple[str, int], float] = field(default_factory=dict)
    association_batch_max: int = 1_000  # v4 association batch reads take up to 1,000 inputs
    # The portal's account settings, served by GET /account-info/v3/details (hubspot_account.py).
    account: hubspot_account.HubSpotAccount = field(default_factory=hubspot_account.HubSpotAccount)


def default_config() -> HubSpotSandboxConfig:
    return HubSpotSandboxConfig()


# Object names a path may carry: plural, singular and HubSpot's object type ids.
OBJECT_ALIASES = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "companies": "companies",
    "company": "companies",
    "0-2": "companies",
    "deals": "deals",
    "deal": "deals",
    "0-3": "deals",
}
OBJECT_PATTERN = "contacts|contact|0-1|companies|company|0-2|deals|deal|0-3"
# v4 association type ids (HUBSPOT_DEFINED, primary) for every pair of the three objects.
ASSOCIATION_TYPE_IDS = {
    ("contacts", "companies"): 1,
    ("companies", "contacts"): 2,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 5,
    ("companies", "deals"): 6,
}


def _canonical(handler: Any) -> Any:
    """Wraps a handler so that ``object_type``/``to_type`` path parameters arrive in their plural form."""

    def wrapped(req: ApiRequest, ctx: SandboxContext) -> ApiResponse:
        for key in ("object_type", "to_type"):
            if key in req.path_params:
                req.path_params[key] = OBJECT_ALIASES[req.path_params[key]]
        return handler(req, ctx)

    wrapped.__name__ = getattr(handler, "__name__", "handler")
    return wrapped


def routes() -> list[Route]:
    obj = rf"(?P<object_type>{OBJECT_PATTERN})"
    to = rf"(?P<to_type>{OBJECT_PATTERN})"
    return [
        Route("hubspot", "POST", rf"/crm/v3/objects/{obj}/search", _canonical(_search), "hubspot:search"),
        Route(
            "hubspot",
            "POST",
            rf"/crm/v3/objects/{obj}/batch/read",
            _canonical(_batch_read),
            "hubspot:batch_read",
        ),
        Route("hubspot", "GET", rf"/crm/v3/objects/{obj}", _canonical(_list_objects), "hubspot:list"),
        Route(
            "hubspot",
            "GET",
            rf"/crm/v3/objects/{obj}/(?P<object_id>[^/]+)",
            _canonical(_get_object),
            "hubspot:get",
        ),
        Route("hubspot", "GET", rf"/crm/v3/properties/{obj}", _canonical(_properties), "hubspot:properties"),
        Route(
            "hubspot",
            "GET",
            rf"/properties/v2/{obj}/properties",
            _canonical(_legacy_properties),
            "hubspot:properties_v2",
        ),
        # The SDK's schemas client calls the second path; both answer the same.
        Route("hubspot", "GET", r"/crm(?:-object-schemas)?/v3/schemas", _schemas, "hubspot:schemas"),
        Route(
            "hubspot",
            "GET",
            r"/crm/v3/pipelines/(?P<object_type>deals|deal|0-3|contacts|contact|0-1)",
            _canonical(_pipelines),
            "hubspot:pipelines",
        ),
        Route(
            "hubspot",
            "POST",
            rf"/crm/v4/associations/{obj}/{to}/batch/read",
            _canonical(_associations_batch_read),
            "hubspot:associations_batch_read",
        ),
        *hubspot_account.routes(),
    ]


def unknown_route(method: str, path: str) -> ApiResponse:
    """HubSpot's answer to a path it does not serve (the server core counts these)."""
    m = re.fullmatch(r"/crm/v[34]/objects/([^/]+)(?:/.*)?", path)
    if m and m.group(1) not in OBJECT_ALIASES:
        return _error(400, "VALIDATION_ERROR", f"Unable to infer object type from: {m.group(1)}")
    return _error(404, "OBJECT_NOT_FOUND", f"Unable to route {method} request to {path}: resource not found")


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
        self.secondly: dict[str, _Window] = {}
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
        if cfg.scope_error_shape == "legacy":
            # The older shape: the old scope names (e.g. "contacts") under context.requiredScopes.
            context: dict[str, list[str]] = {"requiredScopes": [_legacy_scope(scope)]}
        else:
            context = {"requiredGranularScopes": [scope]}
        return (
            _error(
                403,
                "MISSING_SCOPES",
                "This app hasn't been granted all required scopes to make this call. Read more about required "
                "scopes here: https://developers.hubspot.com/scopes.",
                errors=[{"message": "One or more of the following scopes are required.", "context": context}],
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
            headers = _headers(cfg, bucket, used, window.remaining(now, limit, interval), limit, interval)
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
            headers = _headers(cfg, bucket, used, 0, limit, interval)
            if (n - 1) % max(cfg.retry_after_every, 1) == 0:
                headers["Retry-After"] = str(max(1, math.ceil(wait)))
            ctx.counters.incr(f"hubspot.bucket.{bucket}.429")
            # The search endpoints' 429 names no policy (their limit is not one of the app's policies).
            extra = {} if bucket == "search" else {"policyName": policy}
            return (
                _error(429, "RATE_LIMITS", message, headers, errorType="RATE_LIMIT", **extra),
                headers,
            )
        used += 1
        state.daily[token] = (day, used)
        secondly_remaining = 0
        if bucket != "search":
            secondly = state.secondly.setdefault(token, _Window())
            secondly_limit = _secondly_limit(cfg)
            # Reported, not enforced: the rolling ten-second window is the limit that answers 429.
            secondly.times.append(now)
            secondly_remaining = secondly.remaining(now, secondly_limit, 1.0)
    ctx.counters.incr(f"hubspot.bucket.{bucket}.served")
    ctx.counters.incr("hubspot.bucket.daily.served")
    return None, _headers(cfg, bucket, used, remaining, limit, interval, secondly_remaining)


def _secondly_limit(cfg: HubSpotSandboxConfig) -> int:
    return max(1, math.ceil(cfg.general_max / max(cfg.general_interval_ms / 1000.0, 0.001)))


def _legacy_scope(scope: str) -> str:
    """The old scope name HubSpot's older 403 shape gives for a granular one."""
    if scope.startswith("crm.objects.contacts"):
        return "contacts"
    if scope.startswith("crm.schemas."):
        return "crm.schemas." + scope.split(".")[2] + ".read"
    return scope


def _headers(
    cfg: HubSpotSandboxConfig,
    bucket: str,
    used: int,
    remaining: int,
    limit: int,
    interval: float,
    secondly_remaining: int | None = None,
) -> dict[str, str]:
    if bucket == "search":
        # HubSpot's search answers carry no X-HubSpot-RateLimit-* headers at all.
        return {}
    return {
        "X-HubSpot-RateLimit-Daily": str(cfg.daily_limit),
        "X-HubSpot-RateLimit-Daily-Remaining": str(max(cfg.daily_limit - used, 0)),
        "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(interval * 1000)),
        "X-HubSpot-RateLimit-Max": str(limit),
        "X-HubSpot-RateLimit-Remaining": str(remaining),
        "X-HubSpot-RateLimit-Secondly": str(_secondly_limit(cfg)),
        "X-HubSpot-RateLimit-Secondly-Remaining": str(
            _secondly_limit(cfg) if secondly_remaining is None else secondly_remaining
        ),
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
    """What the id, merge and association caches depend on: the store's identity and its ``version``
    (bumped by the helpers that create records or change merges; edits of properties do not)."""
    return (id(ctx.store), getattr(ctx.store, "version", 0), object_type)


_cursors = threading.local()


def _cursor(ctx: SandboxContext) -> Any:
    """One DuckDB cursor per server thread and store (opening one per query costs more than a page)."""
    held = getattr(_cursors, "held", None)
    if held is None or held[0] is not ctx.store:
        held = _cursors.held = (ctx.store, ctx.store.cursor())
    return held[1]


def _has_column(ctx: SandboxContext, table: str, column: str) -> bool:
    cache = _state(ctx)["cache"]
    key = ("has_column", id(ctx.store), table, column)
    if key not in cache:
        cache[key] = bool(
            _cursor(ctx)
            .execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = ? AND column_name = ?",
                [table, column],
            )
            .fetchall()[0][0]
        )
    return bool(cache[key])


def _not_merged(ctx: SandboxContext, object_type: str, alias: str = "") -> str:
    """SQL that leaves out merged-away records (of any object type whose table records merges)."""
    if _has_column(ctx, TABLE_OF[object_type], "merged_into"):
        return f"AND {alias}merged_into IS NULL"
    return ""


def _live_ids(ctx: SandboxContext, object_type: str, archived: bool) -> np.ndarray:
    """Sorted ids a list request pages over, cached per store (see ``_fingerprint``)."""
    cache = _state(ctx)["cache"]
    fp = _fingerprint(ctx, object_type)
    key = ("ids", object_type, archived)
    hit = cache.get(key)
    if hit is not None and hit[0] == fp:
        return hit[1]
    table = TABLE_OF[object_type]
    cur = _cursor(ctx)
    ids = cur.execute(
        f"SELECT id FROM {table} WHERE archived = ? {_not_merged(ctx, object_type)} ORDER BY id", [archived]
    ).fetchnumpy()["id"]
    ids = np.asarray(ids, dtype=np.int64)
    cache[key] = (fp, ids)
    return ids


def _merge_map(ctx: SandboxContext, object_type: str = "contacts") -> tuple[dict[int, int], dict[int, str]]:
    """(loser id -> survivor id, survivor id -> "id;id" of the ids merged into it) for one object type."""
    cache = _state(ctx)["cache"]
    fp = _fingerprint(ctx, object_type)
    key = ("merges", object_type)
    hit = cache.get(key)
    if hit is not None and hit[0] == fp:
        return hit[1], hit[2]
    table = TABLE_OF[object_type]
    rows: list[tuple[Any, Any]] = []
    if _has_column(ctx, table, "merged_into"):
        rows = (
            _cursor(ctx)
            .execute(f"SELECT id, merged_into FROM {table} WHERE merged_into IS NOT NULL ORDER BY id")
            .fetchall()
        )
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
    cache[key] = (fp, loser_to_survivor, text)
    return loser_to_survivor, text


_LINK_SQL = {
    # (from, to) -> SQL of (from_id, to_id) pairs between live records; merged-away records' links are
    # carried by their survivor (COALESCE(merged_into, id)), as HubSpot moves associations on a merge.
    ("deals", "contacts"): """
        SELECT d.id, coalesce(c.merged_into, c.id) FROM deals d JOIN contacts c ON c.id = d.contact_id
        WHERE NOT d.archived {deal_live}""",
    ("contacts", "companies"): """
        SELECT coalesce(c.merged_into, c.id), coalesce(co.merged_into, co.id)
        FROM contacts c JOIN companies co ON co.id = c.associatedcompanyid""",
    ("deals", "companies"): """
        SELECT d.id, coalesce(co.merged_into, co.id) FROM deals d JOIN contacts c ON c.id = d.contact_id
        JOIN companies co ON co.id = c.associatedcompanyid WHERE NOT d.archived {deal_live}""",
}


def _links(ctx: SandboxContext, from_type: str, to_type: str) -> dict[int, list[int]]:
    """Associated ids of every record of ``from_type`` (live records only), cached per store."""
    cache = _state(ctx)["cache"]
    fp = (_fingerprint(ctx, from_type), _fingerprint(ctx, to_type))
    key = ("links", from_type, to_type)
    hit = cache.get(key)
    if hit is not None and hit[0] == fp:
        return hit[1]
    pair, reverse = (from_type, to_type), False
    if pair not in _LINK_SQL:
        pair, reverse = (to_type, from_type), True
    links: dict[int, list[int]] = {}
    if pair in _LINK_SQL:
        sql = _LINK_SQL[pair]
        # Tables without merge columns (older stores) have nothing to resolve.
        for table in ("contacts", "companies", "deals"):
            if not _has_column(ctx, table, "merged_into"):
                alias = {"contacts": "c", "companies": "co", "deals": "d"}[table]
                sql = sql.replace(f"coalesce({alias}.merged_into, {alias}.id)", f"{alias}.id")
        sql = sql.format(deal_live=_not_merged(ctx, "deals", "d."))
        pairs: set[tuple[int, int]] = set()
        for a, b in _cursor(ctx).execute(sql).fetchall():
            if a is None or b is None:
                continue
            pairs.add((int(b), int(a)) if reverse else (int(a), int(b)))
        for a, b in sorted(pairs):
            links.setdefault(a, []).append(b)
    cache[key] = (fp, links)
    return links


def _association_type(from_type: str, to_type: str) -> str:
    return f"{SINGULAR[from_type]}_to_{SINGULAR[to_type]}"


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


def _search_source(ctx: SandboxContext, object_type: str) -> str:
    """The relation search reads: the table as the search index sees it.

    An edit or create stamped at or after the store's end instant reaches the index ``search_lag_seconds``
    (or the record's override) after its last-modified instant, on the server's clock; until then the
    index holds the record's previous version (``<table>__prior``, kept by the store's touch helpers) or,
    for a record created since, nothing. The generated history before the store's end is indexed.
    """
    cfg = _cfg(ctx)
    table = TABLE_OF[object_type]
    end = getattr(ctx.store, "end_instant_utc", None)
    overrides = {int(i): float(v) for (t, i), v in cfg.search_lag_overrides.items() if t == object_type}
    if end is None or (cfg.search_lag_seconds <= 0 and not overrides):
        return table
    end_ms = int(end.replace(tzinfo=dt.UTC).timestamp() * 1000)
    now_ms = int(ctx.clock() * 1000)
    lag_ms = int(cfg.search_lag_seconds * 1000)
    modified = f'epoch_ms("{LAST_MODIFIED[object_type]}")'
    # Numbers only (ints formatted here), never request text.
    lag_sql = str(lag_ms)
    if overrides:
        cases = " ".join(f"WHEN {i} THEN {int(v * 1000)}" for i, v in sorted(overrides.items()))
        lag_sql = f"CASE id {cases} ELSE {lag_ms} END"
    pending = f"({modified} >= {end_ms} AND {modified} + {lag_sql} > {now_ms})"
    if overrides:
        ids = ", ".join(str(i) for i in sorted(overrides))
        pending = f"({pending} OR (id IN ({ids}) AND {modified} + {lag_sql} > {now_ms}))"
    prior = f"{table}__prior"
    if prior in getattr(ctx.store, "prior_tables", set()):
        return (
            f"(SELECT * FROM {table} WHERE NOT {pending} UNION ALL "
            f"SELECT p.* EXCLUDE (_replaced_at) FROM {prior} AS p "
            f"WHERE p.id IN (SELECT id FROM {table} WHERE {pending})) AS {table}"
        )
    return f"(SELECT * FROM {table} WHERE NOT {pending}) AS {table}"


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
    source: str | None = None,
) -> list[dict[str, Any]]:
    schema = _schema(ctx, object_type)
    served = [p for p in props if p in schema.columns]
    select = [
        "id",
        f"strftime({schema.created}, '%Y-%m-%dT%H:%M:%S.%gZ')",
        f"strftime({schema.modified}, '%Y-%m-%dT%H:%M:%S.%gZ')",
    ]
    select += [schema.value_sql(p) for p in served]
    sql = f"SELECT {', '.join(select)} FROM {source or TABLE_OF[object_type]} WHERE {where} ORDER BY {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    rows = _cursor(ctx).execute(sql, params).fetchall()
    merged_text: dict[int, str] = {}
    if "hs_merged_object_ids" in props and "hs_merged_object_ids" not in schema.columns:
        merged_text = _merge_map(ctx, object_type)[1]
    wanted_links = {
        to_type: _links(ctx, object_type, to_type)
        for to_type in dict.fromkeys(OBJECT_ALIASES.get(a, a) for a in associations or [])
        if to_type in OBJECT_TYPES and to_type != object_type
    }
    company_survivor: dict[int, int] = {}
    if "associatedcompanyid" in served:
        company_survivor = _merge_map(ctx, "companies")[0]
    out = []
    n_served = len(served)
    for row in rows:
        rid = int(row[0])
        # Properties the object type does not have are left out, as HubSpot ignores them.
        properties: dict[str, Any] = dict(zip(served, row[3 : 3 + n_served], strict=True))
        properties["hs_object_id"] = str(rid)
        if merged_text:
            properties["hs_merged_object_ids"] = merged_text.get(rid)
        if company_survivor and properties.get("associatedcompanyid"):
            # The association (and this property) follows a merged company to its survivor.
            company = int(properties["associatedcompanyid"])
            properties["associatedcompanyid"] = str(company_survivor.get(company, company))
        record: dict[str, Any] = {
            "id": str(rid),
            "properties": properties,
            "createdAt": row[1],
            "updatedAt": row[2],
            "archived": archived,
        }
        if archived:
            record["archivedAt"] = row[2]
        assoc = {
            to_type: {
                "results": [
                    {"id": str(t), "type": _association_type(object_type, to_type)} for t in links[rid]
                ]
            }
            for to_type, links in wanted_links.items()
            if links.get(rid)
        }
        if assoc:
            record["associations"] = assoc
        out.append(record)
    return out


def _encode_after(next_id: int) -> str:
    """An opaque list cursor, as HubSpot's are: clients pass it back and must not parse it."""
    return base64.urlsafe_b64encode(f"sbx:{next_id}".encode()).decode().rstrip("=")


def _decode_after(text: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not raw.startswith("sbx:") or not raw[4:].isdigit():
        return None
    return int(raw[4:])


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
        decoded = _decode_after(after_raw)
        if decoded is None:
            return _bad_request(f"Invalid after value {after_raw!r}: not a cursor this API issued", headers)
        after = decoded
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
        results = _fetch_records(
            ctx,
            object_type,
            f"id BETWEEN ? AND ? AND archived = ? {_not_merged(ctx, object_type)}",
            [lo, hi, archived],
            props,
            associations=associations,
            archived=archived,
        )
    body: dict[str, Any] = {"results": results}
    if start + limit < len(ids):
        next_after = _encode_after(int(page_ids[-1]) + 1)
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
    object_id = _merge_map(ctx, object_type)[0].get(object_id, object_id)
    archived = (req.query_one("archived", "false") or "false").lower() == "true"
    props = _requested_properties(
        object_type, _schema(ctx, object_type), _split_multi(req.query.get("properties"))
    )
    found = _fetch_records(
        ctx,
        object_type,
        f"id = ? AND archived = ? {_not_merged(ctx, object_type)}",
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
    groups = list(body.get("filterGroups") or [])
    if body.get("filters"):
        # A top-level "filters" list is one more group of ANDed filters, as HubSpot reads it.
        groups.append({"filters": list(body.get("filters") or [])})
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
    where = f"NOT archived {_not_merged(ctx, object_type)}"
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
    source = _search_source(ctx, object_type)
    total = int(_cursor(ctx).execute(f"SELECT count(*) FROM {source} WHERE {where}", params).fetchall()[0][0])
    props = _requested_properties(object_type, schema, list(body.get("properties") or []))
    results = _fetch_records(
        ctx, object_type, where, params, props, order=order, limit=limit, offset=offset, source=source
    )
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
    resolve = _merge_map(ctx, object_type)[0]
    resolved = [resolve.get(i, i) for i in wanted]
    props = _requested_properties(object_type, _schema(ctx, object_type), list(body.get("properties") or []))
    unique = sorted(set(resolved))
    found = (
        _fetch_records(
            ctx,
            object_type,
            f"id IN (SELECT unnest(?)) AND archived = ? {_not_merged(ctx, object_type)}",
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
    """v4 batch read of associations between any two of contacts, companies and deals (search answers
    carry none). Merged-away ids read as their survivor, whose links include the ones moved to it."""
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
    if len(wanted) > cfg.association_batch_max:
        return _bad_request(f"Batch input must contain at most {cfg.association_batch_max} inputs", headers)
    resolve = _merge_map(ctx, from_type)[0]
    links = _links(ctx, from_type, to_type)
    type_id = ASSOCIATION_TYPE_IDS[(from_type, to_type)]
    results = []
    for i in wanted:
        targets = links.get(resolve.get(i, i))
        if not targets:
            continue
        results.append(
            {
                "from": {"id": str(i)},
                "to": [
                    {
                        "toObjectId": t,
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}
                        ],
                    }
                    for t in targets
                ],
            }
        )
    body = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now_iso(ctx)}
    return _with(headers, ApiResponse(200, body))


def _schemas(req: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    """Custom object schemas: the sandbox portal has none, so an empty list (what HubSpot answers then)."""
    error, headers = _guard(req, ctx, "general")
    if error:
        return error
    return _with(headers, ApiResponse(200, {"results": []}))


def _legacy_properties(req: ApiRequest, ctx: SandboxContext) -> ApiResponse:
    """The legacy properties API (``/properties/v2/{object}/properties``): a bare JSON array of property
    definitions, timestamps in epoch milliseconds."""
    object_type = req.path_params["object_type"]
    error, headers = _guard(req, ctx, "general")
    if error:
        return error
    out = []
    for d in _property_definitions(ctx, object_type):
        meta = d.get("modificationMetadata") or {}
        out.append(
            {
                "name": d["name"],
                "label": d["label"],
                "description": d["description"],
                "groupName": d["groupName"],
                "type": d["type"],
                "fieldType": d["fieldType"],
                "options": [
                    {k: o[k] for k in ("label", "value", "displayOrder", "hidden")}
                    | {"description": None, "readOnly": False}
                    for o in d["options"]
                ],
                "displayOrder": d["displayOrder"],
                "calculated": d["calculated"],
                "externalOptions": d["externalOptions"],
                "hasUniqueValue": d["hasUniqueValue"],
                "hidden": d["hidden"],
                "hubspotDefined": d["hubspotDefined"],
                "readOnlyValue": meta.get("readOnlyValue", True),
                "readOnlyDefinition": meta.get("readOnlyDefinition", True),
                "mutableDefinitionNotDeletable": True,
                "formField": d["formField"],
                "favorited": False,
                "favoritedOrder": -1,
                "displayMode": "current_value",
                "showCurrencySymbol": None,
                "createdUserId": None,
                "updatedUserId": None,
                "searchableInGlobalSearch": False,
                "numberDisplayHint": None,
                "textDisplayHint": None,
                "optionsAreMutable": None,
                "referencedObjectType": None,
                "deleted": False,
                "createdAt": 1577836800000,
                "updatedAt": 1577836800000,
                "searchTextAnalysisMode": None,
                "currencyPropertyName": None,
            }
        )
    return _with(headers, ApiResponse(200, out))
