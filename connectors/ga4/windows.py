"""Date windows to fetch: the partition's days plus a lookback window of recent, revisable days."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class DateWindow:
    start: dt.date
    end: dt.date
    mode: str = "full"  # 'full' | 'incremental' | 'lookback' (goes to the request log)

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"window start {self.start} is after its end {self.end}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]

    def halves(self) -> tuple[DateWindow, DateWindow]:
        middle = self.start + dt.timedelta(days=self.days // 2 - 1)
        return (
            DateWindow(self.start, middle, self.mode),
            DateWindow(middle + dt.timedelta(days=1), self.end, self.mode),
        )

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


def plan_windows(
    start: dt.date,
    end: dt.date,
    *,
    lookback_days: int = 3,
    earliest: dt.date | None = None,
    mode: str = "incremental",
) -> list[DateWindow]:
    """The windows a run fetches for partition days ``start..end``.

    GA4 still revises roughly the last 2-3 days, so each run re-fetches the ``lookback_days`` days
    before ``start`` as a separate 'lookback' window. The loader replaces each (property, date)
    partition that a window covers (delete + insert), so revised figures replace the old ones;
    ``replaced_dates`` lists exactly those days.
    """
    windows = []
    if lookback_days > 0:
        lb_start = start - dt.timedelta(days=lookback_days)
        if earliest is not None:
            lb_start = max(lb_start, earliest)
        lb_end = start - dt.timedelta(days=1)
        if lb_start <= lb_end:
            windows.append(DateWindow(lb_start, lb_end, "lookback"))
    windows.append(DateWindow(start, end, mode))
    return windows


def replaced_dates(windows: list[DateWindow]) -> list[dt.date]:
    """Every day whose stored rows the loader must replace for these windows, in order."""
    return sorted({d for w in windows for d in w.dates()})
