"""The experiments section of summary.html, rendered by headless Chromium and checked against SQL over
marts.experiment_readout (the pipeline's marts over the sandbox, and the hand-declared fixture marts)."""

from __future__ import annotations

import datetime as dt
import math

import duckdb

PERIOD_END = dt.date(2026, 11, 22)
FORBIDDEN = ("leads to", "drives", "causes", "because of")


def _float(text: str) -> float | None:
    return float(text) if text else None


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def test_experiments_section_equals_the_mart(rendered, marts: duckdb.DuckDBPyConnection) -> None:
    experiments = marts.execute(
        "SELECT experiment, any_value(verdict), bool_or(srm_flag), min(window_start)::VARCHAR, max(window_end)::VARCHAR "
        "FROM marts.experiment_readout GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert experiments, "the mart has no experiment"
    section = rendered.by_id("experiments")
    figures = {f.attrs["data-experiment"]: f for f in section.find_all("figure")}
    assert set(figures) == {e for e, *_ in experiments}
    for name, verdict, srm, start, end in experiments:
        fig = figures[name]
        assert fig.attrs["data-verdict"] == verdict
        assert fig.attrs["data-srm-flag"] == ("true" if srm else "false")
        assert (fig.attrs["data-window-start"], fig.attrs["data-window-end"]) == (start, end)
        text = fig.find(data_verdict_text=name).text
        assert verdict in text
        if srm:
            assert "Do not read" in text
        assert not any(word in text.lower() for word in FORBIDDEN)
        rows = marts.execute(
            "SELECT variant, conversion_name, tier, users, rate, rate_ci_lower, rate_ci_upper, lift, lift_ci_lower, "
            "lift_ci_upper, significant FROM marts.experiment_readout WHERE experiment = ?",
            [name],
        ).fetchall()
        # micro and macro side by side: one column per conversion, micro columns first
        heads = [
            h.attrs["data-conversion-head"] for h in fig.find_all("th") if "data-conversion-head" in h.attrs
        ]
        tiers = {conv: tier for _, conv, tier, *_ in rows}
        assert set(heads) == set(tiers) and {"micro", "macro"} <= set(tiers.values())
        assert [tiers[h] for h in heads] == sorted((tiers[h] for h in heads), key=lambda t: t != "micro")
        for variant, conv, _tier, users, rate, lo, hi, lift, llo, lhi, sig in rows:
            tr = fig.find("tr", data_variant=variant)
            assert int(tr.find(data_users=True).attrs["data-users"]) == users
            cell = tr.find("td", data_cell=conv)
            assert _same(_float(cell.attrs["data-rate"]), rate)
            assert _same(_float(cell.attrs["data-rate-lo"]), lo) and _same(
                _float(cell.attrs["data-rate-hi"]), hi
            )
            assert _same(_float(cell.attrs["data-lift"]), lift)
            assert _same(_float(cell.attrs["data-lift-lo"]), llo) and _same(
                _float(cell.attrs["data-lift-hi"]), lhi
            )
            assert cell.attrs["data-significant"] == ("" if sig is None else "true" if sig else "false")
            assert f"{rate * 100:.1f} %" in cell.text


def test_report_without_the_mart_has_no_experiments_section(tmp_path, fixture_marts) -> None:
    import shutil

    from reporting import run_export

    copy = tmp_path / "no-experiments.duckdb"
    shutil.copyfile(fixture_marts, copy)
    con = duckdb.connect(str(copy))
    con.execute("DROP TABLE marts.experiment_readout")
    con.close()
    result = run_export(copy, tmp_path / "out", period_end=PERIOD_END, sandbox=True)
    assert 'id="experiments"' not in result.report_path.read_text(encoding="utf-8")
