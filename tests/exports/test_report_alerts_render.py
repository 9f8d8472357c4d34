"""The report's conversion-alerts and time-to-convert sections, rendered by headless Chromium, equal SQL over
the marts they come from (issue 15). Over the real pipeline's marts and over the hand-made fixture marts
(whose alerts fall in the report's week)."""

from __future__ import annotations

import datetime as dt
import math

PERIOD_END = dt.date(2026, 11, 22)
WEEK_START = dt.date(2026, 11, 16)


def _float(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


def test_alerts_of_the_week_equal_the_mart(rendered, marts):
    section = rendered.by_id("alerts")
    expected = marts.execute(
        "SELECT anomaly_id, date, kind, severity, observed, expected FROM marts.conversion_anomalies "
        "WHERE date BETWEEN ? AND ? ORDER BY anomaly_id",
        [WEEK_START, PERIOD_END],
    ).fetchall()
    assert section.attrs["data-alerts"] == str(len(expected))
    rows = sorted(section.find_all("tr", **{"data-anomaly": True}), key=lambda r: r.attrs["data-anomaly"])
    assert [r.attrs["data-anomaly"] for r in rows] == [e[0] for e in expected]
    for row, (_anomaly_id, day, kind, severity, observed, exp) in zip(rows, expected, strict=True):
        assert row.attrs["data-date"] == day.isoformat()
        assert (row.attrs["data-kind"], row.attrs["data-severity"]) == (kind, severity)
        assert int(row.attrs["data-observed"]) == observed
        assert math.isclose(float(row.attrs["data-expected"]), exp, rel_tol=1e-12)
        assert f"{round(exp):,}" in row.text
    if not expected:
        assert "No conversion or funnel step left its expected range" in section.text


def test_time_to_convert_table_and_curves_equal_the_marts(rendered, marts):
    section = rendered.by_id("time-to-convert")
    from_step, to_step = section.attrs["data-from-step"], section.attrs["data-to-step"]
    assert from_step == "contact_created"
    rows = {
        r[0]: r[1:]
        for r in marts.execute(
            "SELECT channel, contacts_at_risk, events, converted_by_7d, converted_by_30d, converted_by_90d, median_days "
            "FROM marts.time_to_convert WHERE from_step = ? AND to_step = ?",
            [from_step, to_step],
        ).fetchall()
    }
    shown = section.find_all("tr", **{"data-channel": True})
    assert {r.attrs["data-channel"] for r in shown} == set(rows) and "All channels" in rows
    for r in shown:
        contacts, events, c7, c30, c90, median = rows[r.attrs["data-channel"]]
        assert int(r.attrs["data-contacts"]) == contacts and int(r.attrs["data-events"]) == events
        for attr, value in (
            ("data-converted-7d", c7),
            ("data-converted-30d", c30),
            ("data-converted-90d", c90),
        ):
            got = _float(r.attrs[attr])
            assert (got is None and value is None) or math.isclose(got, value, rel_tol=1e-12, abs_tol=1e-15)
        assert (_float(r.attrs["data-median"]) is None) == (median is None)
        if median is None:
            assert "not reached" in r.text
    # One step curve per channel; its last point is the curve table's last day for that channel.
    chart = section.find("svg", **{"data-chart": "time-to-convert"})
    paths = {p.attrs["data-channel"]: p for p in chart.find_all("path", **{"data-channel": True})}
    assert set(paths) == set(rows)
    for channel, path in paths.items():
        day, share = marts.execute(
            "SELECT day, share_converted FROM marts.time_to_convert_curve WHERE channel = ? AND from_step = ? "
            "AND to_step = ? ORDER BY day DESC LIMIT 1",
            [channel, from_step, to_step],
        ).fetchall()[0]
        assert int(path.attrs["data-last-day"]) == day
        assert math.isclose(float(path.attrs["data-last-share"]), share, rel_tol=1e-12, abs_tol=1e-15)


def test_exports_carry_the_new_marts_without_personal_data(source):
    export, _ = source
    names = {p.name for p in export.files}
    assert {"conversion_anomalies.csv", "time_to_convert.csv", "time_to_convert_curve.parquet"} <= names
