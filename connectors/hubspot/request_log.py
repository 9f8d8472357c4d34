"""One entry of ``raw.request_log`` (CONTRACTS §4) as a HubSpot extract fills it, and the page
prefetcher that keeps the next pages coming while the caller converts this one.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestLog:
    """One entry of ``raw.request_log`` (CONTRACTS §4) being filled."""

    run_id: str | None
    source_id: str
    request: str
    mode: str
    start_date: str | None = None
    end_date: str | None = None
    rows: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    http_429: int = 0
    splits: int = 0
    quota_tokens_remaining_day: int | None = None
    wait_seconds: float = 0.0
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None
    error: str | None = None
    # Not columns of CONTRACTS §4: ``raw_load`` keeps them in ``raw.request_log.extra``.
    crowded_instants: int = 0  # one-millisecond windows holding more than the search cap
    keyset_restarts: int = 0  # queries of such a window restarted past the largest id read
    overlap_seconds: float | None = None  # incremental: how far before ``since`` the window started
    overlap_rows: int = 0  # incremental: records read again (last modified at or before ``since``)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source": "hubspot",
            "source_id": self.source_id,
            "request": self.request,
            "mode": self.mode,
            "start_date": self.start_date,
            "end_date": self.end_date,
            "rows": self.rows,
            "pages": self.pages,
            "requests": self.requests,
            "retries": self.retries,
            "http_429": self.http_429,
            "splits": self.splits,
            "subject_to_thresholding": None,
            "data_loss_from_other_row": None,
            "sampled": None,
            "quota_tokens_used": None,
            "quota_tokens_remaining_hour": None,
            "quota_tokens_remaining_day": self.quota_tokens_remaining_day,
            "wait_seconds": round(self.wait_seconds, 3),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "crowded_instants": self.crowded_instants,
            "keyset_restarts": self.keyset_restarts,
            "overlap_seconds": self.overlap_seconds,
            "overlap_rows": self.overlap_rows,
        }


_DONE = object()


def prefetch(
    pages: Iterator[list[dict[str, Any]]], depth: int
) -> Generator[list[dict[str, Any]], None, None]:
    """Fetches the next pages on a background thread while the caller works on this one.

    The queue is bounded, so memory stays flat; an error in the fetcher surfaces in the caller.
    """
    if depth <= 0:
        yield from pages
        return
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        q.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            item: Any = _DONE
        except BaseException as exc:  # handed to the consumer, who re-raises it
            item = exc
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=produce, name="hubspot-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
