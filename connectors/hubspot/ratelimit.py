"""One rate limiter per HubSpot portal and token, shared by every client in the process.

HubSpot counts a private app's requests in rolling windows (by default 100 per 10 s, and the search
endpoints about 4 per second) plus a daily cap. A token bucket of the same nominal rate can burst twice
the window's allowance across a window boundary, so the limiter keeps the send times of the last
``max_requests`` requests instead and lets a request go only when the oldest of them has left the
window (plus a small margin for the difference between send and arrival times).

The server's ``X-HubSpot-RateLimit-*`` headers adjust it: ``Max`` and ``Interval-Milliseconds`` replace
the configured window (the portal's tier is the authority), ``Remaining`` lower than what this process
accounts for means something else uses the same token, and the difference is booked as if sent now.

With a ``SharedRateBudget`` (``connectors.rate_budget``) the windows' send times live in a store every
process on the host shares, so concurrent runs on one portal split its allowance instead of each
spending all of it; the windows here then only hold the sizes (still adjusted from the headers).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from connectors.rate_budget import SharedRateBudget, open_budget

GENERAL = "general"
SEARCH = "search"


class _Window:
    def __init__(self, max_requests: int, interval: float) -> None:
        self.max_requests = max(int(max_requests), 1)
        self.interval = float(interval)
        self.sent: deque[float] = deque()
        self.blocked_until = 0.0

    def trim(self, now: float, margin: float) -> None:
        horizon = now - self.interval - margin
        while self.sent and self.sent[0] <= horizon:
            self.sent.popleft()

    def wait_time(self, now: float, margin: float) -> float:
        self.trim(now, margin)
        wait = max(self.blocked_until - now, 0.0)
        if len(self.sent) >= self.max_requests:
            oldest_that_must_leave = self.sent[len(self.sent) - self.max_requests]
            wait = max(wait, oldest_that_must_leave + self.interval + margin - now)
        return wait


@dataclass
class LimiterStats:
    acquired: int = 0
    wait_seconds: float = 0.0
    adjustments: int = 0


class PortalRateLimiter:
    """Thread-safe limiter with a general and a search window; see the module docstring."""

    def __init__(
        self,
        general_max: int = 100,
        general_interval: float = 10.0,
        search_per_second: float = 4.0,
        margin: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        budget: SharedRateBudget | None = None,
        account: str = "",
    ) -> None:
        self._lock = threading.Lock()
        # The cross-process store and this portal's key in it (a hash, never the token).
        self.budget = budget
        self.account = account
        self._clock = clock
        self._sleep = sleep
        self.margin = margin
        search_max = max(int(round(search_per_second)), 1)
        self._windows = {
            GENERAL: _Window(general_max, general_interval),
            SEARCH: _Window(search_max, search_max / float(search_per_second)),
        }
        self.daily_remaining: int | None = None
        self.daily_limit: int | None = None
        self.stats = LimiterStats()

    def window(self, bucket: str) -> tuple[int, float]:
        w = self._windows[bucket]
        return w.max_requests, w.interval

    def acquire(self, bucket: str) -> float:
        """Block until a request of ``bucket`` may be sent; returns the seconds spent waiting.

        Search requests also take a slot of the general window, which is the conservative reading of
        HubSpot's documentation.
        """
        buckets = (SEARCH, GENERAL) if bucket == SEARCH else (GENERAL,)
        waited = 0.0
        while True:
            if self.budget is not None:
                with self._lock:
                    sizes = [(b, *self.window(b)) for b in buckets]
                wait = self.budget.try_take(self.account, sizes, self.margin)
                if wait <= 0:
                    with self._lock:
                        self.stats.acquired += 1
                        self.stats.wait_seconds += waited
                    return waited
                pause = wait + random.uniform(0, 0.002)
                self._sleep(pause)
                waited += pause
                continue
            with self._lock:
                now = self._clock()
                wait = max(self._windows[b].wait_time(now, self.margin) for b in buckets)
                if wait <= 0:
                    for b in buckets:
                        self._windows[b].sent.append(now)
                    self.stats.acquired += 1
                    self.stats.wait_seconds += waited
                    return waited
            # A little jitter spreads threads that wake for the same freed slot.
            pause = wait + random.uniform(0, 0.002)
            self._sleep(pause)
            waited += pause

    def block(self, bucket: str, seconds: float) -> None:
        """After a 429: nobody sends on ``bucket`` for ``seconds``."""
        if self.budget is not None:
            self.budget.block(self.account, bucket, seconds)
            return
        with self._lock:
            w = self._windows[bucket]
            w.blocked_until = max(w.blocked_until, self._clock() + seconds)

    def observe(self, bucket: str, headers: Mapping[str, str], sent_at: float | None = None) -> None:
        """Adjust from a response's ``X-HubSpot-RateLimit-*`` headers."""
        lower = {k.lower(): v for k, v in headers.items()}

        def number(name: str) -> int | None:
            try:
                return int(lower[name])
            except (KeyError, ValueError):
                return None

        with self._lock:
            daily = number("x-hubspot-ratelimit-daily-remaining")
            if daily is not None:
                self.daily_remaining = daily
            limit = number("x-hubspot-ratelimit-daily")
            if limit is not None:
                self.daily_limit = limit
            max_requests = number("x-hubspot-ratelimit-max")
            interval_ms = number("x-hubspot-ratelimit-interval-milliseconds")
            if bucket == SEARCH and interval_ms is not None and interval_ms > 2_000:
                # A search answer that describes the ten-secondly window, not the search one.
                bucket = GENERAL
            w = self._windows[bucket]
            if (
                max_requests
                and interval_ms
                and (max_requests != w.max_requests or interval_ms / 1000 != w.interval)
            ):
                w.max_requests, w.interval = max_requests, interval_ms / 1000.0
                self.stats.adjustments += 1
            remaining = number("x-hubspot-ratelimit-remaining")
            if remaining is None:
                return
            now = self._clock()
            since = (sent_at if sent_at is not None else now) - w.interval - self.margin
            if self.budget is not None:
                # The store counts every process's requests; what the portal saw beyond them is foreign.
                wall_since = time.time() - (now - since)
                foreign = (w.max_requests - remaining) - self.budget.count_since(
                    self.account, bucket, wall_since
                )
                if foreign > 0:
                    self.budget.book(self.account, bucket, foreign)
                    self.stats.adjustments += 1
                return
            booked = sum(1 for t in w.sent if t > since)
            foreign = (w.max_requests - remaining) - booked
            if foreign > 0:
                # Another process (or app) spends the same allowance: book its requests as sent now.
                w.sent.extend([now] * foreign)
                self.stats.adjustments += 1


_REGISTRY: dict[tuple[str, str, str], PortalRateLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def shared_limiter(
    host: str,
    access_token: str,
    general_max: int = 100,
    general_interval: float = 10.0,
    search_per_second: float = 4.0,
    margin: float = 0.2,
    budget_path: str | None = None,
) -> PortalRateLimiter:
    """The process-wide limiter for one portal (host + token); created on first use.

    The token is hashed so the registry never holds it in clear. With ``budget_path`` the limiter
    books its requests in the SQLite store there, shared with every other process on the portal.
    """
    account = "hubspot:" + hashlib.sha256(f"{host.rstrip('/')}\n{access_token}".encode()).hexdigest()
    key = (host.rstrip("/"), hashlib.sha256(access_token.encode()).hexdigest(), budget_path or "")
    with _REGISTRY_LOCK:
        limiter = _REGISTRY.get(key)
        if limiter is None:
            budget = open_budget(budget_path) if budget_path else None
            limiter = PortalRateLimiter(
                general_max, general_interval, search_per_second, margin, budget=budget, account=account
            )
            _REGISTRY[key] = limiter
        return limiter


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [base, base * 2**attempt], capped."""
    r = rng or random
    upper = min(cap, base * (2**attempt))
    return r.uniform(min(base, upper), upper)
