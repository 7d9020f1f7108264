"""Complete or not done: how many rows a trade date of a dataset must have, and the
listings and suspensions that say so.

A date of `daily` or `daily_basic` is complete when it has a row for every stock listed
that day (list_date <= day < delist_date, from `stock_basic`) and not suspended all day
(an `S` row of `suspend_d` without a timing); a date of `adj_factor` when it has one for
every listed stock (tushare's factors cover suspended days). Within COMPLETENESS_TOLERANCE
rows (default 0) the counts must agree; otherwise the day is retried, then failed with
both counts in its error.

The listings are fetched whole (L, D and P) when older than LISTINGS_MAX_AGE_S, and again
when a count disagrees and they are older than LISTINGS_RECHECK_S (a stock listed since
they were fetched); a day's suspensions are fetched once and kept (suspend_d), and again
when a count disagrees.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from psycopg2.extras import execute_values

from chalicelib.datasets import DATASETS
from chalicelib.db import Database, query
from chalicelib.source import TushareSource

log = logging.getLogger(__name__)

LISTINGS = "stock_basic"
CLAIM_S = 30.0  # how long one worker's claim to fetch the listings keeps the others waiting
MISSING_SHOWN = 5  # codes named in a short day's error


@dataclass(frozen=True)
class CompletenessPolicy:
    tolerance: int = 0  # rows a day may differ from the expected count and still be complete
    listings_max_age_s: float = 12 * 3600.0
    listings_recheck_s: float = 60.0


class Incomplete(Exception):
    """A day's answer does not have the rows the listings say it must."""

    def __init__(self, dataset: str, day: date, expected: int, got: int, missing: list[str],
                 extra: list[str]):
        what = "listed and not suspended" if DATASETS[dataset].expects == "traded" else "listed"
        text = f"{dataset} {day}: expected {expected} rows ({what}), got {got}"
        if missing:
            text += f"; missing {', '.join(missing[:MISSING_SHOWN])}" + (" ..." if len(missing) > MISSING_SHOWN else "")
        if extra:
            text += f"; not listed {', '.join(extra[:MISSING_SHOWN])}" + (" ..." if len(extra) > MISSING_SHOWN else "")
        super().__init__(text)
        self.expected, self.got = expected, got


def expected_codes(cur: Any, dataset: str, day: date) -> list[str] | None:
    """The codes a complete `day` of `dataset` has, from the stored listings (and that
    day's stored suspensions); None for a dataset with no expected count."""
    expects = DATASETS[dataset].expects
    if expects is None:
        return None
    cur.execute(query("traded_codes" if expects == "traded" else "listed_codes"), {"day": day})
    return [row["ts_code"] for row in cur.fetchall()]


def listed_codes(db: Database, day: date) -> list[str]:
    """The codes listed on `day` (stored listings): what a server that does not page is
    asked for in batches."""
    with db.transaction() as cur:
        cur.execute(query("listed_codes"), {"day": day})
        return [row["ts_code"] for row in cur.fetchall()]


def compare(dataset: str, day: date, frame: pd.DataFrame, expected: list[str] | None,
            tolerance: int) -> None:
    """Raise Incomplete unless the frame's codes are the expected ones, within `tolerance` rows."""
    if expected is None:
        return
    got = set(frame["ts_code"].tolist())
    want = set(expected)
    missing = sorted(want - got)
    extra = sorted(got - want)
    if len(missing) + len(extra) > tolerance:
        raise Incomplete(dataset, day, len(want), len(frame), missing, extra)


class Listings:
    """`stock_basic` in PostgreSQL, fetched whole from tushare when stale."""

    def __init__(self, db: Database, source: TushareSource, policy: CompletenessPolicy):
        self._db = db
        self._source = source
        self._policy = policy

    def age_s(self) -> float | None:
        with self._db.transaction() as cur:
            cur.execute(query("source_refreshed"), {"name": LISTINGS})
            row = cur.fetchone()
        return None if row is None else float(row["age_s"])

    def ensure_fresh(self, max_age_s: float | None = None) -> bool:
        """Fetch the listings if older than `max_age_s` (the policy's by default); True if
        this call fetched them. One worker fetches; the others wait for it (a while)."""
        limit = self._policy.listings_max_age_s if max_age_s is None else max_age_s
        deadline = time.monotonic() + CLAIM_S
        while True:
            age = self.age_s()
            if age is not None and age <= limit:
                return False
            with self._db.transaction() as cur:
                cur.execute(query("claim_source_refresh"), {"name": LISTINGS, "claim_s": CLAIM_S,
                                                            "max_age_s": limit})
                claimed = cur.fetchone() is not None
            if claimed or time.monotonic() > deadline:
                try:
                    self.refresh()
                except BaseException:
                    if claimed:  # let the next delivery try at once, not after the claim lapses
                        with self._db.transaction() as cur:
                            cur.execute(query("release_source_claim"), {"name": LISTINGS})
                    raise
                return True
            time.sleep(0.25)

    def refresh(self) -> int:
        frame = self._source.listings()
        rows = [(r.ts_code, r.symbol, r.name, r.area, r.industry, r.market, r.exchange,
                 r.list_status, _date(r.list_date), _date(r.delist_date))
                for r in frame.itertuples(index=False)]
        with self._db.transaction() as cur:
            execute_values(cur, query("upsert_listings"), rows,
                           template="(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())", page_size=1000)
            cur.execute(query("mark_source_refreshed"), {"name": LISTINGS, "rows": len(rows)})
        log.info("listings refreshed: %s stocks", len(rows))
        return len(rows)


def _date(value: Any) -> date | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    if len(text) != 8 or not text.isdigit():
        return None
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))
