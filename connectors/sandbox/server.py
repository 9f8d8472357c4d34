"""The sandbox HTTP server: one loopback server that speaks both fake APIs.

The GA4 Data API routes (``ga4_api.routes()``) and the HubSpot CRM routes (``hubspot_api.routes()``)
plug into this core. The core owns what the two share: routing, JSON encoding, counters that tests
and benchmarks read, and fault injection (429 bursts, 5xx, slow and dropped responses, malformed
bodies, 401/403) that is deterministic for a given seed and request order.

It binds 127.0.0.1 only. Use it in-process::

    with SandboxServer(store) as server:
        client = BetaAnalyticsDataClient(transport="rest",
                                         client_options={"api_endpoint": server.base_url}, ...)
"""

from __future__ import annotations

import contextlib
import importlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_MODULES = {"ga4": "connectors.sandbox.ga4_api", "hubspot": "connectors.sandbox.hubspot_api"}


@dataclass
class ApiRequest:
    method: str
    path: str
    path_params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def query_one(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class ApiResponse:
    status: int
    body: Any = None  # dict/list are JSON-encoded; bytes are sent as they are
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[ApiRequest, "SandboxContext"], ApiResponse]


@dataclass
class Route:
    api: str  # "ga4" | "hubspot"
    method: str
    pattern: str  # regular expression matched against the whole path; named groups -> path_params
    handler: Handler
    name: str = ""

    def __post_init__(self) -> None:
        self._regex = re.compile(self.pattern)
        if not self.name:
            self.name = f"{self.api}:{self.method} {self.pattern}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        m = self._regex.fullmatch(path)
        return m.groupdict() if m else None


FAULT_KINDS = (
    "429",
    "429_no_retry_after",
    "500",
    "502",
    "503",
    "slow",
    "drop",
    "malformed",
    "401",
    "403",
    "403_service_disabled",  # GA4: the Data API is not enabled in the credentials' Cloud project
    "429_project_rate",  # GA4: the Cloud project's per-minute request quota (ErrorInfo RATE_LIMIT_EXCEEDED)
)
SANDBOX_CLOUD_PROJECT = "123456789012"


@dataclass
class FaultPlan:
    """Which requests get a fault instead of (or before) their normal answer.

    ``sequence`` scripts the next requests of ``api`` one by one ("ok" lets one through), then the
    probabilities apply. Every decision is drawn from a RNG seeded by (seed, api, request number), so
    one request order gives one set of faults.
    """

    api: str | None = None  # None: both APIs
    seed: int = 0
    sequence: list[str] = field(default_factory=list)
    p_429: float = 0.0
    p_retry_after: float = 0.5  # share of injected 429s that carry Retry-After
    retry_after_seconds: int = 1
    p_5xx: float = 0.0
    p_slow: float = 0.0
    slow_seconds: float = 1.5
    p_drop: float = 0.0
    p_malformed: float = 0.0
    always: str | None = None  # e.g. "401" or "403": every request of the api fails so
    route_contains: str | None = None  # only requests whose path contains this

    def applies_to(self, api: str, path: str) -> bool:
        if self.api is not None and self.api != api:
            return False
        return self.route_contains is None or self.route_contains in path


@dataclass
class SandboxConfig:
    """Live settings of a running sandbox; tests may change fields while it serves.

    ``ga4`` and ``hubspot`` hold the per-API settings objects that ``ga4_api`` and ``hubspot_api``
    define (their ``default_config()`` fills them when left as None).
    """

    seed: int = 7
    ga4: Any = None
    hubspot: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    # Test-only: (api, route name, response) -> response, applied to every handled response; tests
    # plant hostile or malformed values in an otherwise real body with it.
    response_hook: Callable[[str, str, ApiResponse], ApiResponse] | None = None


class Counters:
    """Thread-safe counters of what was served and injected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._max_in_flight: Counter[str] = Counter()
        self._events: list[tuple[float, str, str, int]] = []  # (time, api, route, status)

    def incr(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def enter(self, api: str) -> None:
        with self._lock:
            self._in_flight[api] += 1
            self._max_in_flight[api] = max(self._max_in_flight[api], self._in_flight[api])

    def leave(self, api: str) -> None:
        with self._lock:
            self._in_flight[api] -= 1

    def record(self, api: str, route: str, status: int) -> None:
        with self._lock:
            self._counts[f"{api}.requests"] += 1
            self._counts[f"{api}.status.{status}"] += 1
            self._counts[f"route.{route}"] += 1
            self._events.append((time.monotonic(), api, route, status))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
            for api, n in self._max_in_flight.items():
                out[f"{api}.max_in_flight"] = n
            return out

    def events(self) -> list[tuple[float, str, str, int]]:
        """Every answered request as (monotonic time, api, route name, status), in order."""
        with self._lock:
            return list(self._events)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._max_in_flight.clear()
            self._events.clear()


class SandboxContext:
    """What a route handler may use: the store, live config, counters and per-API state."""

    def __init__(self, store: Any, config: SandboxConfig) -> None:
        self.store = store
        self.config = config
        self.counters = Counters()
        self.base_url = ""
        self.lock = threading.RLock()
        self.state: dict[str, dict[str, Any]] = {"ga4": {}, "hubspot": {}}
        self.clock: Callable[[], float] = time.time


def google_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def hubspot_error(category: str, message: str, **extra: Any) -> dict[str, Any]:
    body = {
        "status": "error",
        "message": message,
        "correlationId": "00000000-0000-4000-8000-000000000000",
        "category": category,
    }
    body.update(extra)
    return body


def _google_error_info(
    code: int, status: str, message: str, reason: str, metadata: dict[str, str]
) -> dict[str, Any]:
    body = google_error(code, status, message)
    body["error"]["details"] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "googleapis.com",
            "metadata": metadata,
        }
    ]
    return body


def _fault_response(kind: str, api: str, plan: FaultPlan) -> ApiResponse:
    if kind == "403_service_disabled":
        project = SANDBOX_CLOUD_PROJECT
        return ApiResponse(
            403,
            _google_error_info(
                403,
                "PERMISSION_DENIED",
                f"Google Analytics Data API has not been used in project {project} before or it is disabled. "
                "Enable it by visiting https://console.developers.google.com/apis/api/analyticsdata.googleapis.com/"
                f"overview?project={project} then retry. If you enabled this API recently, wait a few minutes for "
                "the action to propagate to our systems and retry.",
                "SERVICE_DISABLED",
                {"consumer": f"projects/{project}", "service": "analyticsdata.googleapis.com"},
            ),
        )
    if kind == "429_project_rate":
        return ApiResponse(
            429,
            _google_error_info(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service "
                f"'analyticsdata.googleapis.com' for consumer 'project_number:{SANDBOX_CLOUD_PROJECT}'.",
                "RATE_LIMIT_EXCEEDED",
                {
                    "consumer": f"projects/{SANDBOX_CLOUD_PROJECT}",
                    "quota_metric": "analyticsdata.googleapis.com/requests",
                    "service": "analyticsdata.googleapis.com",
                },
            ),
            {"Retry-After": str(plan.retry_after_seconds)},
        )
    if kind in ("429", "429_no_retry_after"):
        headers = {"Retry-After": str(plan.retry_after_seconds)} if kind == "429" else {}
        if api == "ga4":
            body = google_error(429, "RESOURCE_EXHAUSTED", "Too many requests (injected by the sandbox).")
        else:
            body = hubspot_error(
                "RATE_LIMITS",
                "You have reached your ten_secondly_rolling limit.",
                errorType="RATE_LIMIT",
                policyName="TEN_SECONDLY_ROLLING",
            )
        return ApiResponse(429, body, headers)
    if kind in ("500", "502", "503"):
        code = int(kind)
        status = {500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE"}[code]
        if api == "ga4":
            return ApiResponse(
                code, google_error(code, status, "The service encountered an error (injected).")
            )
        return ApiResponse(code, hubspot_error("INTERNAL_ERROR", "Internal error (injected by the sandbox)."))
    if kind == "401":
        if api == "ga4":
            return ApiResponse(
                401,
                google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
            )
        return ApiResponse(
            401,
            hubspot_error(
                "EXPIRED_AUTHENTICATION",
                "The OAuth token used to make this call expired 1 hour(s) ago.",
            ),
        )
    if kind == "403":
        if api == "ga4":
            return ApiResponse(
                403,
                google_error(
                    403, "PERMISSION_DENIED", "User does not have sufficient permissions for this property."
                ),
            )
        return ApiResponse(
            403,
            hubspot_error(
                "MISSING_SCOPES",
                "This app hasn't been granted all required scopes to make this call.",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": ["crm.objects.contacts.read"]},
                    }
                ],
            ),
        )
    raise ValueError(f"unknown fault kind {kind!r}")


class _FaultState:
    def __init__(self) -> None:
        self.plan: FaultPlan | None = None
        self.request_no: Counter[str] = Counter()
        self.lock = threading.Lock()

    def decide(self, api: str, path: str) -> str | None:
        with self.lock:
            plan = self.plan
            if plan is None or not plan.applies_to(api, path):
                return None
            n = self.request_no[api]
            self.request_no[api] += 1
            if plan.always:
                return plan.always
            if plan.sequence:
                kind = plan.sequence.pop(0)
                return None if kind == "ok" else kind
        rng = random.Random(f"{plan.seed}:{api}:{n}")
        draw = rng.random()
        for kind, p in (
            ("429", plan.p_429),
            ("5xx", plan.p_5xx),
            ("slow", plan.p_slow),
            ("drop", plan.p_drop),
            ("malformed", plan.p_malformed),
        ):
            if draw < p:
                if kind == "429":
                    return "429" if rng.random() < plan.p_retry_after else "429_no_retry_after"
                if kind == "5xx":
                    return rng.choice(["500", "502", "503"])
                return kind
            draw -= p
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # a quiet server: tests and benchmarks read counters instead

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route, params = sandbox.find_route(self.command, parts.path)
        if route is None:
            self._send(sandbox.unknown_route(self.command, parts.path))
            return
        request = ApiRequest(
            method=self.command,
            path=parts.path,
            path_params=params,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        ctx = sandbox.ctx
        if sandbox.router is not None:
            # Several accounts (connectors/sandbox/accounts.py): the request's property or token picks the
            # account's own context (store, settings, quota state), or the router answers a refusal.
            routed = sandbox.router(route, request)
            if isinstance(routed, ApiResponse):
                ctx.counters.record(route.api, route.name, routed.status)
                self._send(routed)
                return
            ctx = routed
        ctx.counters.enter(route.api)
        try:
            fault = sandbox.faults.decide(route.api, parts.path)
            if fault:
                ctx.counters.incr(f"{route.api}.injected.{fault}")
                ctx.counters.incr(f"{route.api}.injected")
            if fault == "slow":
                time.sleep(sandbox.faults.plan.slow_seconds if sandbox.faults.plan else 1.0)
                fault = None
            if fault == "drop":
                ctx.counters.record(route.api, route.name, 0)
                self.close_connection = True
                # Closing without a status line is what a dropped connection looks like to a client.
                self.connection.shutdown(2)
                return
            if fault == "malformed":
                response = ApiResponse(200, b'{"rows": [{"dimensionValues": [{"val', {})
            elif fault:
                response = _fault_response(fault, route.api, sandbox.faults.plan or FaultPlan())
            else:
                try:
                    response = route.handler(request, ctx)
                except Exception as exc:  # a handler bug must show up as a 500, not a hung client
                    ctx.counters.incr(f"{route.api}.handler_errors")
                    response = ApiResponse(500, {"error": {"code": 500, "message": f"sandbox bug: {exc!r}"}})
                hook = sandbox.config.response_hook
                if hook is not None:
                    response = hook(route.api, route.name, response)
            ctx.counters.record(route.api, route.name, response.status)
            self._send(response)
        finally:
            ctx.counters.leave(route.api)

    def _send(self, response: ApiResponse) -> None:
        body = response.body
        if isinstance(body, bytes | bytearray):
            payload = bytes(body)
        elif body is None:
            payload = b""
        else:
            payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(response.status)
        headers = {"Content-Type": "application/json; charset=UTF-8", **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _dispatch
    do_POST = _dispatch
    do_PATCH = _dispatch
    do_DELETE = _dispatch
    do_PUT = _dispatch


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    sandbox: SandboxServer

    def server_activate(self) -> None:
        super().server_activate()
        self._connections_lock = threading.Lock()
        self._connections: set[Any] = set()
        self._workers: set[threading.Thread] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        # Tracked, so that stop() can end kept-alive connections and wait for their threads: a handler
        # thread still alive at interpreter exit dies inside DuckDB (its thread-local cursor) and aborts
        # the process ("FATAL: exception not rethrown").
        worker = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True, name="sandbox-request"
        )
        with self._connections_lock:
            self._connections.add(request)
            self._workers.add(worker)
        worker.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)
                self._workers.discard(threading.current_thread())

    def end_connections(self, timeout: float) -> None:
        """Close every open client connection and wait (up to `timeout` s) for the handler threads."""
        with self._connections_lock:
            connections, workers = list(self._connections), list(self._workers)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))


class SandboxServer:
    """Serves the fake GA4 and HubSpot APIs over one store, on 127.0.0.1.

    Start with ``start()``/``stop()`` or as a context manager. ``port=0`` picks a free port.
    """

    def __init__(
        self,
        store: Any,
        config: SandboxConfig | None = None,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        apis: tuple[str, ...] = ("ga4", "hubspot"),
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the sandbox binds loopback only")
        self.config = config or SandboxConfig()
        self.ctx = SandboxContext(store, self.config)
        self.faults = _FaultState()
        self.routes: list[Route] = []
        self._apis = tuple(apis)
        for api in apis:
            module = _load_api_module(api)
            if module is None:
                continue
            if getattr(self.config, api, None) is None and hasattr(module, "default_config"):
                setattr(self.config, api, module.default_config())
            self.routes.extend(module.routes())
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.sandbox = self
        self.host = host
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://{host}:{self.port}"
        self.ctx.base_url = self.base_url
        self._thread: threading.Thread | None = None
        # None: every request is served from ``ctx``. Otherwise (route, request) -> the context that serves
        # it, or an answer (e.g. 403 for a property the caller may not read); see accounts.py.
        self.router: Callable[[Route, ApiRequest], SandboxContext | ApiResponse] | None = None

    def account_context(self, store: Any, config: SandboxConfig) -> SandboxContext:
        """A context of its own (store, live config, per-API state) sharing this server's counters, base
        URL and clock: what ``router`` hands out for one account of a multi-account sandbox."""
        ctx = SandboxContext(store, config)
        ctx.counters = self.ctx.counters
        ctx.base_url = self.base_url
        ctx.clock = lambda: self.ctx.clock()
        for api in self._apis:
            module = _load_api_module(api)
            if (
                module is not None
                and getattr(config, api, None) is None
                and hasattr(module, "default_config")
            ):
                setattr(config, api, module.default_config())
        return ctx

    @property
    def store(self) -> Any:
        return self.ctx.store

    def find_route(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None, {}

    def unknown_route(self, method: str, path: str) -> ApiResponse:
        """The owning API's own answer to a path no route serves, counted (``<api>.unknown_routes`` and
        ``unknown_route.<METHOD> <path>``) so a test sees what a foreign client asked for."""
        api = "ga4" if path.startswith("/v1") else "hubspot"
        module = _load_api_module(api) if api in self._apis else None
        answer = getattr(module, "unknown_route", None)
        if callable(answer):
            response: ApiResponse = answer(method, path)
        elif api == "ga4":
            response = ApiResponse(404, google_error(404, "NOT_FOUND", f"Method not found: {method} {path}"))
        else:
            response = ApiResponse(404, hubspot_error("OBJECT_NOT_FOUND", f"No route for {method} {path}"))
        self.ctx.counters.incr(f"{api}.unknown_routes")
        self.ctx.counters.incr(f"unknown_route.{method} {path}")
        self.ctx.counters.record(api, "unknown", response.status)
        return response

    def set_faults(self, plan: FaultPlan | None) -> None:
        with self.faults.lock:
            self.faults.plan = replace(plan, sequence=list(plan.sequence)) if plan else None
            self.faults.request_no.clear()

    def counters(self) -> dict[str, Any]:
        return self.ctx.counters.snapshot()

    def reset_counters(self) -> None:
        self.ctx.counters.reset()

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="sandbox"
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd.end_connections(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _load_api_module(api: str) -> Any:
    name = API_MODULES[api]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:  # that API is not built (yet); anything else missing is a real error
            return None
        raise
