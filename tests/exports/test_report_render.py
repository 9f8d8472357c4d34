"""summary.html rendered by headless Chromium: every section and chart is there, and the numbers it
shows equal the marts' (recomputed here with independent SQL over the same analyst file)."""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
from pathlib import Path

import duckdb
import pytest

PERIOD_END = dt.date(2026, 11, 22)
WEEK_START = dt.date(2026, 11, 16)

SECTIONS = ["headline", "funnel", "trends", "segments", "micro-macro", "channel-funnel", "data-quality"]
PREV_START, PREV_END = WEEK_START - dt.timedelta(days=7), WEEK_START - dt.timedelta(days=1)


@pytest.fixture(scope="module")
def rendered(fixture_export, browser):
    return browser.parse_dom(browser.dump_dom(fixture_export.report_path))


@pytest.fixture(scope="module")
def marts(fixture_marts):
    con = duckdb.connect(str(fixture_marts), read_only=True)
    yield con
    con.close()


def one(con, sql, params=()):
    return con.execute(sql, params).fetchall()[0][0]


def num(text: str) -> float:
    return float(text)


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def test_every_section_and_chart_is_rendered(rendered, marts):
    report = rendered.by_id("report")
    assert report.attrs["data-period"] == "2026-W47"
    assert report.attrs["data-data-source"] == "sandbox"
    for section in SECTIONS:
        node = rendered.by_id(section)
        assert node.tag == "section" and node.text, section
    funnels = {r[0] for r in marts.execute("SELECT DISTINCT funnel_name FROM marts.funnel_daily").fetchall()}
    drawn = {svg.attrs["data-funnel"] for svg in rendered.find_all("svg", data_chart="funnel")}
    assert drawn == funnels
    catalog = {r[0] for r in marts.execute("SELECT conversion_name FROM marts.conversion_catalog").fetchall()}
    trends = {svg.attrs["data-conversion"] for svg in rendered.find_all("svg", data_chart="trend")}
    assert trends == catalog
    for chart in ("segment-lift", "micro-macro-lift", "channel-customers"):
        svg = rendered.find("svg", data_chart=chart)
        assert svg.find_all("circle") or svg.find_all("rect"), chart
    # Self-contained: no script, no external stylesheet, font or image.
    assert not rendered.find_all("script")
    assert not rendered.find_all("link")


def test_page_loads_nothing_from_the_network(fixture_export):
    html = fixture_export.report_path.read_text()
    assert not re.search(r"<script|<link|@import|url\(\s*['\"]?https?:|src=\"https?:", html)
    # Only the SVG namespace URI may appear, and it is never fetched.
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= {"http://www.w3.org/2000/svg"}


def test_headline_numbers_equal_the_marts(rendered, marts):
    def sessions(a, b):
        return one(
            marts, "SELECT sum(sessions) FROM marts.web_sessions_daily WHERE date BETWEEN ? AND ?", [a, b]
        )

    def tier(t, a, b):
        return one(
            marts,
            "SELECT sum(conversions) FROM marts.conversions_daily WHERE tier = ? AND date BETWEEN ? AND ?",
            [t, a, b],
        )

    expected = {
        "sessions": (sessions(WEEK_START, PERIOD_END), sessions(PREV_START, PREV_END)),
        "micro_conversions": (tier("micro", WEEK_START, PERIOD_END), tier("micro", PREV_START, PREV_END)),
        "macro_conversions": (tier("macro", WEEK_START, PERIOD_END), tier("macro", PREV_START, PREV_END)),
    }
    for key, (value, previous) in expected.items():
        card = rendered.find("div", data_metric=key)
        assert num(card.attrs["data-value"]) == value, key
        assert num(card.attrs["data-previous"]) == previous, key
        assert f"{value:,}" in card.text and f"{previous:,}" in card.text, card.text
        assert close(num(card.attrs["data-change"]), value / previous - 1)
    web_macro = one(
        marts,
        "SELECT sum(conversions) FROM marts.conversions_daily WHERE tier = 'macro' AND source_system = 'ga4' "
        "AND date BETWEEN ? AND ?",
        [WEEK_START, PERIOD_END],
    )
    rate = rendered.find("div", data_metric="web_macro_rate")
    assert close(num(rate.attrs["data-value"]), web_macro / expected["sessions"][0])
    assert f"{100 * web_macro / expected['sessions'][0]:.2f} %" in rate.text
    # The per-conversion table: one row per catalog entry with this week's and last week's counts.
    by_name = dict(
        marts.execute(
            "SELECT conversion_name, sum(conversions) FROM marts.conversions_daily WHERE date BETWEEN ? AND ? "
            "GROUP BY ALL",
            [WEEK_START, PERIOD_END],
        ).fetchall()
    )
    rows = rendered.by_id("conversion-table").find_all("tr", data_conversion=True)
    assert {r.attrs["data-conversion"] for r in rows} == set(by_name)
    for r in rows:
        assert num(r.attrs["data-count"]) == by_name[r.attrs["data-conversion"]]
    # Macro conversions are listed first.
    tiers = [r.attrs["data-tier"] for r in rows]
    assert tiers == sorted(tiers, key=lambda t: t != "macro")


def test_funnel_counts_and_drop_off_equal_the_marts(rendered, marts):
    steps = marts.execute(
        "SELECT funnel_name, step_index, step_name, sum(count) FROM marts.funnel_daily WHERE date BETWEEN ? AND ? "
        "GROUP BY ALL ORDER BY 1, 2",
        [WEEK_START, PERIOD_END],
    ).fetchall()
    funnels: dict[str, list[tuple[str, float]]] = {}
    for name, _, step, count in steps:
        funnels.setdefault(name, []).append((step, count))
    for name, expected in funnels.items():
        svg = rendered.find("svg", data_chart="funnel", data_funnel=name)
        bars = svg.find_all("g", data_step=True, data_count=True)
        assert [(b.attrs["data-step"], num(b.attrs["data-count"])) for b in bars] == expected
        drops = {d.attrs["data-step"]: d for d in svg.find_all("g", data_drop_off=True)}
        worst = max(range(1, len(expected)), key=lambda i: 1 - expected[i][1] / expected[i - 1][1])
        for i in range(1, len(expected)):
            step, count = expected[i]
            drop = 1 - count / expected[i - 1][1]
            node = drops[step]
            assert close(num(node.attrs["data-drop-off"]), drop)
            assert num(node.attrs["data-lost"]) == expected[i - 1][1] - count
            assert f"{drop * 100:.1f} %" in node.text
            assert (node.attrs.get("data-worst") == "true") == (i == worst)
        table = rendered.find("table", data_table="funnel", data_funnel=name)
        shown = [
            (r.attrs["data-step"], num(r.attrs["data-count"])) for r in table.find_all("tr", data_step=True)
        ]
        assert shown == expected


def test_trends_cover_four_weeks_and_sum_to_the_period(rendered, marts):
    window_start = PERIOD_END - dt.timedelta(days=27)
    daily = marts.execute(
        "SELECT conversion_name, date, sum(conversions) FROM marts.conversions_daily WHERE date BETWEEN ? AND ? "
        "GROUP BY ALL",
        [window_start, PERIOD_END],
    ).fetchall()
    expected: dict[str, dict[dt.date, float]] = {}
    for name, day, n in daily:
        expected.setdefault(name, {})[day] = n
    for svg in rendered.find_all("svg", data_chart="trend"):
        name = svg.attrs["data-conversion"]
        points = [p.split(":") for p in svg.attrs["data-points"].split(",")]
        assert len(points) == 28
        assert points[0][0] == window_start.isoformat() and points[-1][0] == PERIOD_END.isoformat()
        for day, value in points:
            assert num(value) == expected.get(name, {}).get(dt.date.fromisoformat(day), 0), (name, day)
        in_period = sum(num(v) for d, v in points if dt.date.fromisoformat(d) >= WEEK_START)
        assert num(svg.attrs["data-period-total"]) == in_period


def test_segment_ranking_matches_the_marts_most_receptive_first(rendered, marts):
    section = rendered.by_id("segments")
    ws, we = section.attrs["data-window-start"], section.attrs["data-window-end"]
    expected = marts.execute(
        "SELECT segment_dimension, segment_value, rank, lift, lift_ci_low, lift_ci_high, q_value, significant "
        "FROM marts.segment_summary WHERE window_start = ? AND window_end = ? AND tier = ? AND conversion_name = ? "
        "AND rank IS NOT NULL ORDER BY rank",
        [ws, we, section.attrs["data-tier"], section.attrs["data-conversion"]],
    ).fetchall()
    rows = rendered.by_id("segment-table").find_all("tr", data_rank=True)
    assert len(rows) == len(expected) > 0
    for row, (dim, value, rank, lift, low, high, q, sig) in zip(rows, expected, strict=True):
        assert (row.attrs["data-dimension"], row.attrs["data-value"]) == (dim, value)
        assert int(row.attrs["data-rank"]) == rank
        assert close(num(row.attrs["data-lift"]), lift)
        assert close(num(row.attrs["data-lift-low"]), low) and close(num(row.attrs["data-lift-high"]), high)
        assert close(num(row.attrs["data-q"]), q)
        assert row.attrs["data-significant"] == ("true" if sig else "false")
        assert f"{lift:.2f}×" in row.text
    # The forest plot draws the same estimates, top rank first.
    chart_rows = rendered.find("svg", data_chart="segment-lift").find_all("g", data_key=True)
    assert chart_rows[0].attrs["data-key"] == f"{expected[0][0]}={expected[0][1]}"
    # The plain-words reading names the significant segments, better and worse, and the null dimensions.
    reading = rendered.by_id("segments-reading").text
    for _dim, value, *_rest, sig in expected:
        if sig:
            assert value in reading
    nulls = {d for d, *_ in expected} - {d for d, *_r, s in expected if s}
    for dim in nulls:
        assert dim.replace("_", " ") in reading


def test_micro_macro_table_matches_the_marts(rendered, marts):
    expected = marts.execute(
        "SELECT micro_conversion, basis, lift, q_value, significant FROM marts.micro_macro_lift ORDER BY rank"
    ).fetchall()
    rows = rendered.by_id("micro-macro-table").find_all("tr", data_micro=True)
    assert [(r.attrs["data-micro"], r.attrs["data-basis"]) for r in rows] == [(m, b) for m, b, *_ in expected]
    for row, (_, _, lift, q, sig) in zip(rows, expected, strict=True):
        assert close(num(row.attrs["data-lift"]), lift) and close(num(row.attrs["data-q"]), q)
        assert row.attrs["data-significant"] == ("true" if sig else "false")
    top = expected[0][0]
    assert top in rendered.by_id("micro-macro-reading").text


def test_channel_funnel_matches_the_marts(rendered, marts):
    columns = [
        "sessions",
        "micro_conversions",
        "leads",
        "contacts_created",
        "mqls",
        "sqls",
        "opportunities",
        "customers",
        "deals_won",
        "revenue",
    ]
    sums = ", ".join(f"sum({c})" for c in columns)
    expected = {
        r[0]: r[1:]
        for r in marts.execute(
            f"SELECT channel, {sums} FROM marts.channel_funnel_daily WHERE date BETWEEN ? AND ? GROUP BY channel",
            [WEEK_START, PERIOD_END],
        ).fetchall()
    }
    rows = rendered.by_id("channel-table").find_all("tr", data_channel=True)
    assert {r.attrs["data-channel"] for r in rows} == set(expected)
    for row in rows:
        for column, value in zip(columns, expected[row.attrs["data-channel"]], strict=True):
            assert close(num(row.attrs["data-" + column.replace("_", "-")]), float(value)), (
                row.attrs,
                column,
            )
    sessions = [num(r.attrs["data-sessions"]) for r in rows]
    assert sessions == sorted(sessions, reverse=True)
    bars = rendered.find("svg", data_chart="channel-customers").find_all("g", data_key=True)
    for bar in bars:
        s, *_, customers = (expected[bar.attrs["data-key"]][i] for i in (0, 7))
        assert close(num(bar.attrs["data-value"]), 1000 * float(customers) / float(s))


def test_data_quality_notes_name_flagged_days_and_sandbox(rendered, marts):
    section = rendered.by_id("data-quality")
    thresholded = one(
        marts,
        "SELECT count(DISTINCT start_date) FROM marts.data_quality WHERE subject_to_thresholding "
        "AND start_date BETWEEN ? AND ?",
        [WEEK_START, PERIOD_END],
    )
    other = one(
        marts,
        "SELECT count(DISTINCT start_date) FROM marts.data_quality WHERE data_loss_from_other_row "
        "AND start_date BETWEEN ? AND ?",
        [WEEK_START, PERIOD_END],
    )
    assert int(section.attrs["data-thresholded-days"]) == thresholded > 0
    assert int(section.attrs["data-other-row-days"]) == other > 0
    kinds = {n.attrs["data-note"] for n in section.find_all("li", data_note=True)}
    assert {"sandbox", "thresholding", "other-row"} <= kinds
    assert rendered.find(None, id="sandbox-badge").text == "Sandbox data"


def test_screenshot_shows_the_report(fixture_export, browser, tmp_path_factory):
    out = tmp_path_factory.mktemp("screens") / "summary.png"
    png = browser.screenshot(fixture_export.report_path, out)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1100, 5600)
    # A blank page compresses to a few kB; the rendered report with its charts is far larger.
    assert len(data) > 150_000
    # STEPWISE_TEST_SCREENSHOT_DIR keeps the picture for a human to look at.
    keep = os.environ.get("STEPWISE_TEST_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / "summary.png")
