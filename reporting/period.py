"""Which days a report covers: a `Period` (an ISO week or any run of days), and the default one, the
last complete Monday–Sunday week in the marts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from reporting.errors import ExportError


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ExportError(f"period end {self.end} is before its start {self.start}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def is_iso_week(self) -> bool:
        return self.days == 7 and self.start.isoweekday() == 1

    @property
    def label(self) -> str:
        if self.is_iso_week:
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

    @property
    def title(self) -> str:
        if self.start.year != self.end.year:
            return f"{self.start:%-d %b %Y} – {self.end:%-d %b %Y}"
        if self.start.month != self.end.month:
            return f"{self.start:%-d %b} – {self.end:%-d %b %Y}"
        return f"{self.start:%-d}–{self.end:%-d %b %Y}"

    def previous(self) -> Period:
        return Period(self.start - dt.timedelta(days=self.days), self.start - dt.timedelta(days=1))


def default_period(
    con: duckdb.DuckDBPyConnection, period_end: dt.date | None = None, days: int = 7
) -> Period:
    """The last complete Monday–Sunday week in the marts, or the `days` ending on `period_end`."""
    if days < 1:
        raise ExportError(f"period length must be at least one day, got {days}")
    if period_end is None:
        (last,) = con.execute("SELECT max(date) FROM marts.web_sessions_daily").fetchall()[0]
        if last is None:
            raise ExportError("marts.web_sessions_daily is empty: there is no period to report on")
        if days == 7:
            # A weekly report covers whole ISO weeks; a week with data missing at its end waits.
            last = last - dt.timedelta(days=(last.isoweekday() % 7))
        period_end = last
    return Period(period_end - dt.timedelta(days=days - 1), period_end)
