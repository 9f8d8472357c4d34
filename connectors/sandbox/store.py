"""The sandbox's deterministic synthetic store: one population of web visitors and CRM records.

Both fake APIs (GA4 Data API, HubSpot CRM v3) serve views of this store, so cross-source totals
reconcile exactly. Contract: ``docs/CONTRACTS.md`` §1 (tables and columns) and §5 (planted truths).

Model
-----
*Sessions* (GA4 property ``123456789``, time zone America/New_York, one row per session). Per day a
Poisson number of sessions around ``sessions_per_day`` (weekday factor), start times from a diurnal
profile. 32 % of sessions are returning visits: they pick a visitor who existed before that day (recent
visitors more often; a pool of earlier visitors exists before the window), so every visitor whose first
session falls in the store has exactly one ``new`` session, their first. Device category and country are
properties of the visitor, drawn independently of everything else. Channel (GA4 default channel groups)
depends on new/returning; source/medium/campaign and the landing page (20 paths) depend on the channel.

Per session, micro actions: the process milestones are drawn from the bottom up so that
``purchase ⊂ begin_checkout ⊂ add_to_cart ⊂ view_item`` holds for every session (counts too); secondary
actions sign_up, file_download, add_to_wishlist, search, share, view_size_chart, write_review, and
generate_lead (0/1, about ``lead_rate`` of sessions) with a ``lead_form``. Purchase propensity is
``PURCHASE_BASE × channel multiplier × 1.3 if returning × 4 if add_to_wishlist``; revenue is log-normal.

*CRM* (HubSpot, timestamps UTC). Every session with generate_lead creates exactly one contact at the
session's start (local time converted to UTC with DuckDB's ICU rules). ``lead_form`` becomes
``first_conversion_event_name``. Newsletter signups enter ``subscriber`` at creation and ``lead`` about an
hour later; the other forms enter ``lead`` at creation. Then MQL → SQL → opportunity → (deal) → customer
with per-form progression probabilities and exponential delays; a stage is entered only if its time is
before the store's end (the local midnight after ``end_date``), so no date lies in the future.
Each contact that entered opportunity has one deal (pipeline ``default``) created at the opportunity date;
deals whose close time falls inside the store are closedwon/closedlost, open ones sit in a stage by
elapsed share of their time to close (their ``closedate`` is the expected one and may lie after the end).
Customers are exactly the contacts whose deal is closedwon (customer date = closedate).
0.5 % of contacts are archived, another 0.5 % merged into a live survivor (``merged_into``; the survivor's
``hs_merged_object_ids`` lists them, ';'-separated as HubSpot does). ``lastmodifieddate`` is at or after
every stage and conversion date; a block of ``bulk_import_contacts`` live contacts shares one
``lastmodifieddate`` instant (end − 6 h, a bulk import) so the HubSpot search 10,000-result cap bites.
Personal data are synthetic: ``firstname.lastname.<id>@example.com``, ``+1-555-<7 digits>``.

Planted truths (``store.truth.planted``, CONTRACTS §5)
------------------------------------------------------
- channel Email buys about twice as often per session as the rest; Display about 0.4×.
- country and device category: identical propensities (visitor attributes drawn independently).
- contact level: "Demo request" contacts reach customer several times as often as the rest;
  "Newsletter signup" is the planted null AGAINST THE REST: each newsletter contact progresses like a random
  contact of the other forms (Contact us / Brochure request / Demo request drawn 3:3:1, their own mix), so
  it reaches every stage, customer included, at the same expected rate as all other contacts together.
  That draw has its own RNG stream, so sessions, events and every other draw are unchanged by it.
- session level: add_to_wishlist multiplies purchase probability by 4; share is drawn with one constant
  probability, independently of everything (no link to purchase).
- cross-source: per property-local date and channel, GA4 generate_lead count == contacts created,
  counting every contact, including those later archived or merged (a merge in HubSpot does not delete
  the creation). ``createdate`` converts back to the session's local date exactly.

Determinism: one ``np.random.default_rng(seed)`` drawn in a fixed order, sessions in fixed 28-day chunks;
``Store.fingerprint()`` hashes every table, and the same parameters give the same fingerprint (whichever
storage below holds them).

Storage and speed
-----------------
``store.con`` is an in-memory DuckDB connection whose tables live in the catalog ``sandbox_store``
(``Store.cursor()`` switches to it; views of the same names in the default catalog serve a bare
``con.cursor()``). Stores up to 3 M sessions use a compressed in-memory catalog; those up to 1 M sessions
(demo: ~180 k sessions, ~10 k contacts, about a second to generate) are generated once per parameter set and
then copied from cached Arrow tables (~0.2 s), so every ``build_store`` call still gets an independent store
(``touch_contacts`` on one never shows in another). Larger ones (``large``:
~18 M sessions, ~1 M contacts, ~110 k deals) are generated in 28-day chunks into a private temporary DuckDB
file (compressed, buffer-managed; DuckDB memory limit 4 GB unless given) that ``Store.close()`` or garbage
collection removes. With ``cache_dir`` (e.g. ``data/sandbox-cache``) the generated file is kept there and
each store works on a private copy of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import os
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from connectors.sandbox import (
    store_anomalies,
    store_experiments,
    store_gen,
    store_hostile,
    store_lifecycle,
    store_live,
    store_merges,
    store_realism,
)
from connectors.sandbox import store_model as m
from connectors.sandbox.store_gen import (
    EVENT_COLUMNS,
    GenParams,
    create_events_view,
    end_instant_utc,
    populate,
)

__all__ = ["DEFAULT_CACHE_DIR", "PRESETS", "Preset", "Store", "StoreTruth", "build_store"]

TABLES = ("sessions", "contacts", "deals", "companies", "experiment_exposures")
STORE_CATALOG = "sandbox_store"
# Where callers (sandbox CLI, benchmarks) keep generated large stores; git-ignored like all of data/.
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / "data" / "sandbox-cache"
_TABLE_KEYS = {
    "sessions": "session_id",
    "contacts": "id",
    "deals": "id",
    "companies": "id",
    "experiment_exposures": "experiment, user_id",
}
FUNNEL_STEPS = ("view_item", "add_to_cart", "begin_checkout", "purchase")


@dataclass(frozen=True)
class Preset:
    """Scale parameters of a store; ``build_store`` keyword overrides replace fields."""

    name: str
    days: int
    sessions_per_day: float
    lead_rate: float = 0.055
    bulk_import_contacts: int = 2_000
    companies: int | None = None  # None: about one per 150 contacts, between 20 and 5,000
    # Realistic propensities (store_realism.py, CONTRACTS §5.1): day x segment effects with this log-scale SD,
    # weekday seasonality, campaigns, per-visitor propensity; realism=False gives iid draws.
    realism: bool = True
    day_effect_sd: float = store_realism.DEFAULT_DAY_EFFECT_SD


PRESETS: dict[str, Preset] = {
    "demo": Preset(name="demo", days=90, sessions_per_day=2_000, bulk_import_contacts=2_000),
    "large": Preset(
        name="large", days=365, sessions_per_day=50_000, lead_rate=0.0565, bulk_import_contacts=12_000
    ),
}

# File-backed (large) stores get this DuckDB memory limit unless the caller sets one: heavy report queries
# spill to the store's private temporary directory instead of growing the process.
FILE_STORE_MEMORY_LIMIT = "4GB"
# Stores up to this many sessions live in memory; larger ones in a private temporary file.
_IN_MEMORY_MAX_SESSIONS = 3_000_000
# Stores up to this many sessions are generated once per parameter set and kept (as Arrow) in memory.
_ARROW_CACHE_MAX_SESSIONS = 1_000_000


class StoreTruth:
    """Ground truth of a store for tests and benchmarks; every helper is one SQL query."""

    def __init__(self, store: Store):
        self._store = store
        self.planted: dict[str, Any] = {
            "better_segment": ("channel", "Email"),
            "worse_segment": ("channel", "Display"),
            "null_dimensions": ["country", "device_category"],
            "leading_micro_contact": "Demo request",
            "non_leading_micro_contact": "Newsletter signup",
            "leading_micro_session": "add_to_wishlist",
            "non_leading_micro_session": "share",
            "macro_session": "purchase",
            "macro_contact": "customer",
            "purchase_channel_multiplier": dict(
                zip(m.CHANNELS, m.PURCHASE_CHANNEL_MULT.tolist(), strict=True)
            ),
            "wishlist_purchase_multiplier": m.WISHLIST_PURCHASE_MULT,
            "hostile_values": store_hostile.HOSTILE_VALUES,
            "experiments": store_experiments.planted_truth(),
            **store_anomalies.planted(store.start_date, store.end_date),
        }

    def _df(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self._store.cursor().execute(sql, params or {}).df()

    def ga4_leads_by_day_channel(self) -> pd.DataFrame:
        """GA4 view: generate_lead events per property-local date and channel."""
        return self._df(
            "SELECT date, channel, sum(generate_lead)::BIGINT AS n FROM sessions "
            "WHERE generate_lead > 0 GROUP BY ALL ORDER BY date, channel"
        )

    def contacts_created_by_day_channel(self) -> pd.DataFrame:
        """HubSpot view: contacts created per property-local date and channel (all contacts, including
        archived and merged ones), mapping hs_analytics_source back onto the channel."""
        return self._df(
            """
            WITH src_map AS (SELECT unnest($sources) AS hs_source, unnest($channels) AS channel)
            SELECT timezone($tz, timezone('UTC', c.createdate))::DATE AS date, s.channel, count(*)::BIGINT AS n
            FROM contacts c JOIN src_map s ON s.hs_source = c.hs_analytics_source
            GROUP BY ALL ORDER BY date, channel
            """,
            {"sources": list(m.HS_SOURCES), "channels": list(m.CHANNELS), "tz": self._store.time_zone},
        )

    def sessions_by_day(self) -> pd.DataFrame:
        """Sessions, engaged sessions, users, new users, purchases and revenue per property-local date."""
        return self._df(
            """
            SELECT date, count(*)::BIGINT AS sessions, count(*) FILTER (engaged)::BIGINT AS engaged_sessions,
                count(DISTINCT user_id)::BIGINT AS users,
                count(*) FILTER (new_vs_returning = 'new')::BIGINT AS new_users,
                sum(purchase)::BIGINT AS purchases, sum(purchase_revenue) AS purchase_revenue,
                sum(generate_lead)::BIGINT AS leads
            FROM sessions GROUP BY date ORDER BY date
            """
        )

    def funnel_counts(self, by_date: bool = False) -> pd.DataFrame:
        """Sessions reaching each purchase-funnel step (and the step's event count), in step order."""
        group = "date, " if by_date else ""
        selects = [
            f"SELECT {group}{i + 1} AS step_order, '{step}' AS step, "
            f"count(*) FILTER ({step} > 0)::BIGINT AS sessions, sum({step})::BIGINT AS events FROM sessions"
            + (" GROUP BY date" if by_date else "")
            for i, step in enumerate(FUNNEL_STEPS)
        ]
        return self._df(" UNION ALL ".join(selects) + f" ORDER BY {group}step_order")

    def purchase_rate_by(self, dimension: str) -> pd.DataFrame:
        """Sessions, purchasing sessions and purchase rate per value of a session dimension."""
        col = _session_dimension(dimension)
        return self._df(
            f"SELECT {col} AS value, count(*)::BIGINT AS sessions, "
            f"count(*) FILTER (purchase > 0)::BIGINT AS purchasing_sessions, "
            f"avg((purchase > 0)::INT) AS rate FROM sessions GROUP BY ALL ORDER BY value"
        )

    def customer_rate_by_form(self) -> pd.DataFrame:
        """Contacts, customers and customer rate per first conversion form (all contacts)."""
        return self._df(
            "SELECT first_conversion_event_name AS form, count(*)::BIGINT AS contacts, "
            "count(hs_v2_date_entered_customer)::BIGINT AS customers, "
            "avg((hs_v2_date_entered_customer IS NOT NULL)::INT) AS rate FROM contacts GROUP BY ALL ORDER BY form"
        )

    def crm_funnel_by_day_channel(self) -> pd.DataFrame:
        """Web -> CRM per property-local date and channel: sessions and leads (GA4 view), and contacts that
        entered each lifecycle stage on that local date (all contacts, archived and merged included; channel
        from hs_analytics_source), deals won on that date and their amount."""
        stage_counts = ", ".join(
            f"count(*) FILTER (stage = '{stage}')::BIGINT AS {alias}"
            for stage, alias in (
                ("lead", "leads_entered"),
                ("marketingqualifiedlead", "mql"),
                ("salesqualifiedlead", "sql"),
                ("opportunity", "opportunities"),
                ("customer", "customers"),
            )
        )
        return self._df(
            f"""
            WITH src_map AS (SELECT unnest($sources) AS hs_source, unnest($channels) AS channel),
            contact_channel AS (
                SELECT c.*, s.channel FROM contacts c JOIN src_map s ON s.hs_source = c.hs_analytics_source
            ),
            stage_entries AS (
                UNPIVOT (
                    SELECT id, channel, hs_v2_date_entered_lead AS "lead",
                        hs_v2_date_entered_marketingqualifiedlead AS marketingqualifiedlead,
                        hs_v2_date_entered_salesqualifiedlead AS salesqualifiedlead,
                        hs_v2_date_entered_opportunity AS opportunity, hs_v2_date_entered_customer AS customer
                    FROM contact_channel
                ) ON "lead", marketingqualifiedlead, salesqualifiedlead, opportunity, customer
                INTO NAME stage VALUE entered_at
            ),
            stages AS (
                SELECT timezone($tz, timezone('UTC', entered_at))::DATE AS date, channel, {stage_counts}
                FROM stage_entries GROUP BY ALL
            ),
            created AS (
                SELECT timezone($tz, timezone('UTC', createdate))::DATE AS date, channel,
                    count(*)::BIGINT AS contacts_created
                FROM contact_channel GROUP BY ALL
            ),
            won AS (
                SELECT timezone($tz, timezone('UTC', d.closedate))::DATE AS date, c.channel,
                    count(*)::BIGINT AS deals_won, sum(d.amount) AS won_amount
                FROM deals d JOIN contact_channel c ON c.id = d.contact_id
                WHERE d.dealstage = 'closedwon' AND d.merged_into IS NULL GROUP BY ALL
            ),
            web AS (
                SELECT date, channel, count(*)::BIGINT AS sessions, sum(generate_lead)::BIGINT AS ga4_leads
                FROM sessions GROUP BY ALL
            ),
            keys AS (
                SELECT date, channel FROM web UNION SELECT date, channel FROM stages
                UNION SELECT date, channel FROM won
            )
            SELECT k.date, k.channel, coalesce(w.sessions, 0) AS sessions, coalesce(w.ga4_leads, 0) AS ga4_leads,
                coalesce(c.contacts_created, 0) AS contacts_created,
                coalesce(s.leads_entered, 0) AS leads_entered, coalesce(s.mql, 0) AS mql, coalesce(s.sql, 0) AS sql,
                coalesce(s.opportunities, 0) AS opportunities, coalesce(s.customers, 0) AS customers,
                coalesce(d.deals_won, 0) AS deals_won, coalesce(d.won_amount, 0) AS won_amount
            FROM keys k
            LEFT JOIN web w USING (date, channel) LEFT JOIN created c USING (date, channel)
            LEFT JOIN stages s USING (date, channel) LEFT JOIN won d USING (date, channel)
            ORDER BY k.date, k.channel
            """,
            {"sources": list(m.HS_SOURCES), "channels": list(m.CHANNELS), "tz": self._store.time_zone},
        )


def _session_dimension(name: str) -> str:
    allowed = {
        "channel",
        "device_category",
        "country",
        "new_vs_returning",
        "landing_page",
        "campaign",
        "source",
        "medium",
    }
    if name not in allowed:
        raise ValueError(f"unknown session dimension {name!r}; use one of {sorted(allowed)}")
    return name


class Store:
    """A built synthetic store: an in-memory DuckDB connection plus its parameters and truth helpers."""

    time_zone = m.TIME_ZONE
    property_id = m.PROPERTY_ID
    currency_code = m.CURRENCY_CODE
    lifecycle_stages = m.LIFECYCLE_STAGES
    deal_pipeline = m.DEAL_PIPELINE
    deal_stages = m.DEAL_STAGES
    channels = m.CHANNELS
    channel_to_hs_source = m.CHANNEL_TO_HS_SOURCE
    lead_forms = dict(zip(m.LEAD_FORMS, m.HS_FORM_NAMES, strict=True))
    event_names = EVENT_COLUMNS
    tables = TABLES

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        preset: Preset,
        seed: int,
        start_date: dt.date,
        end_date: dt.date,
        *,
        private_dir: str | None = None,
        time_zone: str = m.TIME_ZONE,
        property_id: str = m.PROPERTY_ID,
    ):
        self.con = con
        # The property's reporting zone (its local days) and id; the class defaults are the demo store's.
        self.time_zone = time_zone
        self.property_id = property_id
        # Temporary database files (large stores) go away with the store.
        self._finalizer = weakref.finalize(self, _release, con, private_dir)
        self.preset = preset
        self.seed = seed
        self.start_date = start_date
        self.end_date = end_date
        # First instant after the store (local midnight after end_date) as naive UTC; no stage date reaches it.
        self.end_instant_utc: dt.datetime = end_instant_utc(end_date, time_zone)
        self.truth = StoreTruth(self)
        self._lock = threading.Lock()
        self._touches = 0
        # Live changes (store_live): prior versions kept for the lagging search index, a version counter.
        self._live_changes = 0
        self.version = 0
        self.prior_tables: set[str] = set()

    def close(self) -> None:
        """Close the connection and remove temporary files (also done when the store is garbage-collected)."""
        self._finalizer()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread (DuckDB connections are not shared across threads)."""
        cur = self.con.cursor()
        cur.execute(f"USE {STORE_CATALOG}")
        return cur

    def row_counts(self) -> dict[str, int]:
        cur = self.cursor()
        return {t: cur.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}

    def fingerprint(self) -> str:
        """SHA-256 over every table (row count and an order-independent sum of per-row hashes), stable order."""
        cur = self.cursor()
        digest = hashlib.sha256()
        for table in TABLES:
            cols = [r[0] for r in cur.execute(f"DESCRIBE {table}").fetchall()]
            row_hash = "hash(" + ", ".join(f'"{c}"' for c in cols) + ")"
            n, total, xor = cur.execute(
                f"SELECT count(*), sum({row_hash}::HUGEINT), bit_xor({row_hash}) FROM {table}"
            ).fetchall()[0]
            digest.update(f"{table}|{','.join(cols)}|{n}|{total}|{xor}\n".encode())
        return digest.hexdigest()

    def touch(
        self,
        object_type: str,
        fraction: float = 0.01,
        at: dt.datetime | str | None = None,
        spread: dt.timedelta = dt.timedelta(hours=1),
        ids: list[int] | None = None,
    ) -> list[int]:
        """Edits ``fraction`` of the live contacts, deals or companies (or ``ids``) at ``at`` (None: the
        store's end; "now": the real clock); see ``store_live.touch``."""
        return store_live.touch(self, object_type, fraction, at, spread, ids)

    def create_contacts(self, n: int, at: dt.datetime | str | None = None) -> list[int]:
        """Creates ``n`` contacts (an offline import) at ``at``; see ``store_live.create_contacts``."""
        return store_live.create_contacts(self, n, at)

    def touch_contacts(
        self,
        fraction: float = 0.01,
        at: dt.datetime | str | None = None,
        spread: dt.timedelta = dt.timedelta(hours=1),
    ) -> list[int]:
        """Modify a deterministic subset of live contacts, as a day of CRM activity would.

        Sets ``lastmodifieddate`` of ``fraction`` of the live (not archived, not merged) contacts to
        ``at`` + a uniform offset within ``spread`` (naive UTC; default: the store's end instant), and moves
        a fifth of the touched leads on to marketingqualifiedlead at that time. Returns the touched ids.
        The subset depends on the store's seed and on how many touches came before, so repeated calls
        touch different contacts. ``at`` must not precede any touched contact's lastmodifieddate.
        """
        if not 0 < fraction <= 1:
            raise ValueError("fraction must be in (0, 1]")
        at = store_live.resolve_at(self, at)  # None: the store's end; "now": the real clock
        with self._lock:
            self._touches += 1
            rng = np.random.default_rng([self.seed, 7_919, self._touches])
            cur = self.cursor()
            live = cur.execute(
                "SELECT id FROM contacts WHERE NOT archived AND merged_into IS NULL ORDER BY id"
            ).fetchnumpy()["id"]
            k = int(round(fraction * live.shape[0]))
            chosen = np.sort(rng.choice(live, size=k, replace=False))
            offsets_us = (rng.random(k) * spread.total_seconds() * 1e6).astype(np.int64)
            promote = rng.random(k) < 0.2
            latest = cur.execute(
                "SELECT max(lastmodifieddate) FROM contacts WHERE id IN (SELECT unnest($ids))",
                {"ids": chosen.tolist()},
            ).fetchall()[0][0]
            if latest is not None and latest > at:
                raise ValueError(
                    f"touch_contacts: at={at} precedes a touched contact's lastmodifieddate {latest}"
                )
            at_us = int(at.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
            touched = pa.table(
                {
                    "id": chosen,
                    "ts": pa.array(at_us + offsets_us, pa.int64()).cast(pa.timestamp("us")),
                    "promote": promote,
                }
            )
            store_live.keep_prior(cur, self, "contacts", chosen.tolist())  # what lagging search still sees
            cur.register("touched_contacts", touched)
            cur.execute("BEGIN")
            cur.execute(
                """
                UPDATE contacts SET
                    lastmodifieddate = t.ts,
                    lifecyclestage = CASE WHEN t.promote AND contacts.lifecyclestage = 'lead'
                        THEN 'marketingqualifiedlead' ELSE contacts.lifecyclestage END,
                    hs_v2_date_entered_marketingqualifiedlead = CASE
                        WHEN t.promote AND contacts.lifecyclestage = 'lead' THEN t.ts
                        ELSE contacts.hs_v2_date_entered_marketingqualifiedlead END
                FROM touched_contacts t WHERE contacts.id = t.id
                """
            )
            cur.execute("COMMIT")
            cur.unregister("touched_contacts")
            return chosen.tolist()


def _default_end_date() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def _resolve(preset: str | Preset, overrides: dict[str, Any]) -> Preset:
    if isinstance(preset, Preset):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"unknown store preset {preset!r}; use one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(Preset)} - {"name"}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"unknown build_store override(s) {sorted(unknown)}; allowed: {sorted(fields)}")
    resolved = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    if (
        resolved.days < 1
        or resolved.sessions_per_day <= 0
        or not 0 < resolved.lead_rate < 1
        or not 0 <= resolved.day_effect_sd <= 1
    ):
        raise ValueError(f"invalid store scale: {resolved}")
    return resolved


@functools.lru_cache(maxsize=8)
def _cached_tables(params: GenParams) -> dict[str, pa.Table]:
    con = duckdb.connect()
    populate(con, params)
    return {t: con.sql(f"SELECT * FROM {t} ORDER BY {_TABLE_KEYS[t]}").to_arrow_table() for t in TABLES}


def _load_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> None:
    for name, table in tables.items():
        con.register("src_table", table)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM src_table")
        con.unregister("src_table")
    create_events_view(con)


def _new_connection(memory_limit: str | None, db_file: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose store catalog is a compressed in-memory database, or, for large
    stores, a private temporary file (buffer-managed, so memory stays bounded)."""
    con = duckdb.connect(config={"memory_limit": memory_limit} if memory_limit else {})
    if db_file is None:
        con.execute(f"ATTACH ':memory:' AS {STORE_CATALOG} (COMPRESS)")
    else:
        con.execute(f"ATTACH $path AS {STORE_CATALOG}", {"path": str(db_file)})
    con.execute(f"USE {STORE_CATALOG}")
    return con


def _ensure_cache_file(cache_dir: Path, preset: Preset, params: GenParams) -> Path:
    path = _cache_file(cache_dir, preset, params)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Unique temporary name, then an atomic rename: concurrent builders never see a half-written file.
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.unlink(missing_ok=True)
        file_con = duckdb.connect(str(tmp))
        try:
            populate(file_con, params)
            file_con.execute("CHECKPOINT")
        finally:
            file_con.close()
        os.replace(tmp, path)
    return path


def _release(con: duckdb.DuckDBPyConnection, private_dir: str | None) -> None:
    try:
        con.close()
    finally:
        if private_dir is not None:
            shutil.rmtree(private_dir, ignore_errors=True)


def _expose_in_default_catalog(con: duckdb.DuckDBPyConnection) -> None:
    """Views in the connection's default catalog, so a bare ``con.cursor()`` (which starts there) sees the
    tables too; ``Store.cursor()`` switches to the store's catalog itself."""
    for name in (*TABLES, "events"):
        con.execute(f"CREATE VIEW memory.main.{name} AS SELECT * FROM {STORE_CATALOG}.main.{name}")


@functools.cache
def _generator_digest() -> str:
    """Hash of the generator's source: a cached file from an older model is never reused."""
    digest = hashlib.sha256()
    for module in (
        store_gen,
        m,
        store_hostile,
        store_realism,
        store_lifecycle,
        store_merges,
        store_experiments,
        store_anomalies,
    ):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


def _cache_file(cache_dir: Path, preset: Preset, params: GenParams) -> Path:
    key = hashlib.sha256(f"{params!r}|{duckdb.__version__}|{_generator_digest()}".encode()).hexdigest()[:12]
    return cache_dir / f"store-{preset.name}-seed{params.seed}-{params.end_date.isoformat()}-{key}.duckdb"


def build_store(
    preset: str | Preset = "demo",
    seed: int = 7,
    end_date: dt.date | str | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    memory_limit: str | None = None,
    cache: bool = True,
    time_zone: str | None = None,
    property_id: str | None = None,
    **overrides: Any,
) -> Store:
    """Build (or fetch from cache) a store; see the module docstring for the model.

    ``overrides`` replace :class:`Preset` fields (days, sessions_per_day, lead_rate, bulk_import_contacts,
    companies). Every call returns an independent connection (``touch_contacts`` on one store never shows
    in another). Small stores are generated once per parameter set and kept in memory as Arrow tables;
    with ``cache_dir`` the generated tables are also kept in a DuckDB file there and loaded from it.
    ``cache=False`` always generates afresh (determinism tests).
    ``time_zone`` (an IANA name; default America/New_York) is the property's reporting zone: the store's days
    are its local days and CRM instants are their UTC conversions. ``property_id`` (default ``123456789``)
    is the GA4 property the store answers as. Neither changes the default store's data.
    """
    resolved = _resolve(preset, overrides)
    zone = time_zone or m.TIME_ZONE
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"build_store: unknown time zone {zone!r}; use an IANA name like 'Europe/Berlin'"
        ) from None
    if isinstance(end_date, str):
        end_date = dt.date.fromisoformat(end_date)
    end = end_date or _default_end_date()
    start = end - dt.timedelta(days=resolved.days - 1)
    params = GenParams(
        seed=int(seed),
        start_date=start,
        end_date=end,
        sessions_per_day=float(resolved.sessions_per_day),
        lead_rate=float(resolved.lead_rate),
        bulk_import_contacts=int(resolved.bulk_import_contacts),
        companies=resolved.companies,
        realism=bool(resolved.realism),
        day_effect_sd=float(resolved.day_effect_sd),
        time_zone=zone,
    )
    expected_sessions = resolved.days * resolved.sessions_per_day
    private_dir: str | None = None
    if cache_dir is not None:
        path = _ensure_cache_file(Path(cache_dir), resolved, params)
        # A private copy keeps the cache file pristine while touch_contacts writes to this store.
        private_dir = tempfile.mkdtemp(prefix="stepwise-store-")
        private = Path(private_dir) / "store.duckdb"
        shutil.copyfile(path, private)
        con = _new_connection(memory_limit or FILE_STORE_MEMORY_LIMIT, private)
    elif expected_sessions <= _IN_MEMORY_MAX_SESSIONS:
        con = _new_connection(memory_limit)
        if cache and expected_sessions <= _ARROW_CACHE_MAX_SESSIONS:
            _load_tables(con, _cached_tables(params))
        else:
            populate(con, params)
    else:
        # Large stores live in a temporary file (buffer-managed, compressed): bounded memory.
        private_dir = tempfile.mkdtemp(prefix="stepwise-store-")
        con = _new_connection(memory_limit or FILE_STORE_MEMORY_LIMIT, Path(private_dir) / "store.duckdb")
        populate(con, params)
        con.execute(f"CHECKPOINT {STORE_CATALOG}")
    _expose_in_default_catalog(con)
    return Store(
        con,
        resolved,
        int(seed),
        start,
        end,
        private_dir=private_dir,
        time_zone=zone,
        property_id=str(property_id or m.PROPERTY_ID),
    )
