"""marts.experiment_readout built from the sandbox through the GA4 SDK: every statistic of every row equals an
independent computation (statsmodels, scipy, numerical integration), every column is commented, and the
experiments file is validated with file and line."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from scipy import integrate
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from transforms.catalog import default_catalog
from transforms.experiments_config import load_experiments
from transforms.yaml_lines import ConfigError

TODAY = dt.date(2026, 11, 23)  # the day after the test store's last day


@pytest.fixture(scope="module")
def readout(demo_store, tmp_path_factory) -> duckdb.DuckDBPyConnection:
    from connectors.ga4 import Ga4Client, Ga4Settings
    from connectors.ga4.experiments import ExperimentQuery, fetch_experiment, validate_experiments
    from connectors.sandbox.server import SandboxConfig, SandboxServer
    from transforms.experiments import build_experiment_readout, load_raw_experiments

    catalog = default_catalog()
    config = load_experiments(catalog=catalog)
    con = duckdb.connect(str(tmp_path_factory.mktemp("readout") / "w.duckdb"))
    with SandboxServer(demo_store, SandboxConfig(seed=7)) as server:
        client = Ga4Client(
            Ga4Settings(property_ids=["123456789"], api_endpoint=server.base_url, timeout_s=30)
        )
        queries = [
            ExperimentQuery(
                e.name,
                tuple(v.audience for v in e.variants),
                tuple(catalog.by_name(n).signal for n in (*e.micro, *e.macro)),
            )
            for e in config.experiments
        ]
        validate_experiments(client, queries)
        tables = [
            fetch_experiment(client, "123456789", q, *e.window(TODAY))
            for e, q in zip(config.experiments, queries, strict=True)
        ]
    load_raw_experiments(
        con,
        pa.concat_tables(tables),
        replaced=[("123456789", e.name) for e in config.experiments],
        partition_key="t",
    )
    build_experiment_readout(con, config, catalog)
    yield con
    con.close()


def _rows(con: duckdb.DuckDBPyConnection) -> list[dict]:
    cur = con.execute("SELECT * FROM marts.experiment_readout")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _mixture_lr(r: float, v: float, theta0: float, tau: float = 0.10) -> float:
    peak = tau * tau * (r - theta0) / (tau * tau + v)
    num, _ = integrate.quad(
        lambda t: sps.norm.pdf(r, theta0 + t, math.sqrt(v)) * sps.norm.pdf(t, 0, tau),
        -12 * tau,
        12 * tau,
        points=[peak],
        limit=400,
        epsabs=0,
        epsrel=1e-10,
    )
    return num / sps.norm.pdf(r, theta0, math.sqrt(v))


def test_every_row_equals_an_independent_computation(readout) -> None:
    rows = _rows(readout)
    assert {r["experiment"] for r in rows} == {"checkout_button", "free_shipping_banner", "hero_video"}
    control = {(r["experiment"], r["conversion_name"]): r for r in rows if r["is_control"]}
    for r in rows:
        n, x = r["users"], r["converters"]
        assert r["rate"] == pytest.approx(x / n, rel=1e-12)
        lo, hi = proportion_confint(x, n, alpha=0.05, method="wilson")
        assert (r["rate_ci_lower"], r["rate_ci_upper"]) == pytest.approx((lo, hi), rel=1e-9)
        # SRM: scipy's chi-square over the experiment's users per variant (first conversion's rows)
        per_variant = {
            o["variant"]: (o["users"], o["planned_share"])
            for o in rows
            if o["experiment"] == r["experiment"] and o["conversion_name"] == r["conversion_name"]
        }
        total = sum(u for u, _ in per_variant.values())
        expected = sps.chisquare(
            [u for u, _ in per_variant.values()], [s * total for _, s in per_variant.values()]
        ).pvalue
        assert r["srm_p_value"] == pytest.approx(expected, rel=1e-9, abs=1e-300)
        assert r["srm_flag"] == (expected < 0.001)
        if r["is_control"]:
            assert r["lift"] is None and r["p_value"] is None and r["significant"] is None
            continue
        c = control[(r["experiment"], r["conversion_name"])]
        pc, pt = c["converters"] / c["users"], x / n
        lift = pt / pc - 1
        var = pt * (1 - pt) / (n * pc**2) + pt**2 * pc * (1 - pc) / (c["users"] * pc**4)
        assert r["lift"] == pytest.approx(lift, rel=1e-12)
        z = abs(lift) / math.sqrt(var)
        assert r["fixed_p_value"] == pytest.approx(2 * sps.norm.sf(z), rel=1e-9, abs=1e-300)
        assert r["fixed_lift_ci_lower"] == pytest.approx(
            lift - sps.norm.isf(0.025) * math.sqrt(var), rel=1e-12
        )
        # always-valid: p = 1/LR (numerical mixture); the sequence's edges are where the LR reaches 20
        lr = _mixture_lr(lift, var, 0.0)
        assert r["p_value"] == pytest.approx(min(1.0, 1.0 / lr), rel=1e-6, abs=1e-300)
        for edge in (r["lift_ci_lower"], r["lift_ci_upper"]):
            assert _mixture_lr(lift, var, edge) == pytest.approx(20.0, rel=1e-5)
        assert r["significant"] == (r["p_value"] < 0.05)


def test_every_column_is_commented(readout) -> None:
    comments = readout.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'marts' AND table_name = 'experiment_readout'"
    ).fetchall()
    assert comments and all(text for _, text in comments), [c for c, t in comments if not t]
    (table_comment,) = readout.execute(
        "SELECT comment FROM duckdb_tables() WHERE schema_name = 'marts' AND table_name = 'experiment_readout'"
    ).fetchall()[0]
    assert "ALWAYS-VALID" in table_comment


def test_unit_is_users_over_the_window_not_user_days(readout, demo_store) -> None:
    """The same visitors on many days count once: users equal the distinct exposed visitors (two settled
    days short at most, as GA4 still revises the last ones), far fewer than user-days."""
    row = readout.execute(
        "SELECT users, window_start, window_end, audience_name FROM marts.experiment_readout "
        "WHERE experiment = 'checkout_button' AND variant = 'control' AND conversion_name = 'purchase'"
    ).fetchall()[0]
    cur = demo_store.cursor()
    distinct = cur.execute(
        "SELECT count(DISTINCT user_id) FROM experiment_exposures WHERE exp_variant_string = ?", [row[3]]
    ).fetchall()[0][0]
    user_days = cur.execute(
        "SELECT count(*) FROM (SELECT DISTINCT s.user_id, s.date FROM sessions s JOIN experiment_exposures e "
        "ON e.user_id = s.user_id AND s.date >= e.date WHERE e.exp_variant_string = ?)",
        [row[3]],
    ).fetchall()[0][0]
    assert distinct * 0.97 <= row[0] <= distinct < user_days


# --- the experiments file ---------------------------------------------------------------------------

GOOD = """version: 1
experiments:
  - name: checkout_button
    variants:
      - {name: control, audience: A, planned_share: 0.5}
      - {name: green, audience: B, planned_share: 0.5}
    control: control
    start_date: 2026-09-01
    micro: [add_to_cart]
    macro: [purchase]
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "experiments.yaml"
    path.write_text(text, encoding="utf-8")
    return path, load_experiments(path, default_catalog())


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        (
            "    control: control\n",
            "    control: treatment\n",
            7,
            "control 'treatment' is not one of its variants",
        ),
        (
            "planned_share: 0.5}\n    control",
            "planned_share: 0.7}\n    control",
            4,
            "planned shares add up to 1.2",
        ),
        ("    micro: [add_to_cart]\n", "    micro: [purchase]\n", 9, "is macro in the catalog"),
        ("    micro: [add_to_cart]\n", "    micro: [add_to_crat]\n", 9, "did you mean 'add_to_cart'"),
        ("    micro: [add_to_cart]\n", "    micro: [lifecycle_mql]\n", 9, "only GA4 events can be read out"),
        ("    start_date: 2026-09-01\n", "    start_date: next week\n", 8, "not a date"),
        (
            "    start_date: 2026-09-01\n",
            "    start_date: 2026-09-01\n    end_date: 2026-08-01\n",
            9,
            "before start_date",
        ),
        ("    control: control\n", "    control: control\n    contorl: x\n", 8, "did you mean 'control'"),
        ("audience: B,", "audience: A,", 6, "audience 'A' is used by checkout_button/control"),
        ("  - name: checkout_button\n", "  - name: Checkout Button\n", 3, "lower_snake_case"),
        ("    control: control\n", "    control: control\n    control: green\n", 8, "appears twice"),
    ],
)
def test_bad_experiments_file_is_one_message_with_file_and_line(tmp_path, old, new, line, words) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, GOOD.replace(old, new, 1))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'experiments.yaml'}, line {line}: "), message
    assert words in message and "Fix: " in message and "\n" not in message


def test_shipped_file_and_relative_windows(tmp_path) -> None:
    config = load_experiments(catalog=default_catalog())
    assert [e.name for e in config.experiments] == ["checkout_button", "free_shipping_banner", "hero_video"]
    hero = config.experiments[2]
    assert hero.window(TODAY) == (dt.date(2026, 9, 24), dt.date(2026, 11, 22))
    _path, one = _load(
        tmp_path,
        GOOD.replace(
            "    start_date: 2026-09-01\n", "    start_date: 2026-09-01\n    end_date: 2026-10-01\n"
        ),
    )
    assert one.experiments[0].window(TODAY) == (dt.date(2026, 9, 1), dt.date(2026, 10, 1))
    assert one.experiments[0].window(dt.date(2026, 9, 1)) is None  # not started: no complete day yet


def test_no_experiment_data_yet_builds_an_empty_commented_readout(tmp_path) -> None:
    # A property whose experiments have not started (or an accounts file with no experiment report) has an
    # empty raw.ga4_experiments: the readout is an empty table with its comments, not an IndexError.
    from transforms.experiments import build_experiment_readout

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    catalog = default_catalog()
    assert build_experiment_readout(con, load_experiments(catalog=catalog), catalog) == 0
    assert con.execute("SELECT count(*) FROM marts.experiment_readout").fetchall() == [(0,)]
    comment = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE schema_name = 'marts' AND table_name = 'experiment_readout'"
    ).fetchall()[0][0]
    assert comment
