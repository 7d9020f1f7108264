"""The datasets of one day: fetch each, check it is complete, write it and settle it.

Kept apart from the delivery that drives them (worker.py: the claim, the lease, retries
and the queue): what makes a dataset's day right is a concern of its own: which datasets
are still open, the listings and suspensions a complete count needs (re-read once a
delivery when a count disagrees, as either may be what is out of date), and the rows,
synced mark and status written in one transaction that first checks the day is still
open, so a delivery that lost its day writes nothing. A dataset tushare refuses to serve
(no permission) fails on every open day of the job at once rather than a day at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from chalicelib.completeness import (CompletenessPolicy, Incomplete, Listings, compare, expected_codes,
                                     listed_codes)
from chalicelib.datasets import DATASETS, ordered
from chalicelib.db import Database, query
from chalicelib.jobs import complete_job_if_done
from chalicelib.queue import DayMessage
from chalicelib.source import TushareSource
from chalicelib.store import TABLES, write_rows

OPEN = ("pending", "running")  # a day's statuses before it is settled


@dataclass
class DayWork:
    """What one delivery has already made sure of for its day."""
    day: date
    listings_checked: bool = False
    suspensions_ready: bool = False
    rechecked: bool = False  # a disagreeing count has had its listings and suspensions re-read


class DayDatasets:
    def __init__(self, db: Database, source: TushareSource,
                 completeness: CompletenessPolicy = CompletenessPolicy(),
                 listings: Listings | None = None):
        self._db = db
        self._source = source
        self._completeness = completeness
        self._listings = listings or Listings(db, source, completeness)

    def open_datasets(self, message: DayMessage) -> list[tuple[str, bool]]:
        with self._db.transaction() as cur:
            cur.execute(query("job_datasets_open"), day_key(message))
            rows = cur.fetchall()
            if not rows:  # a day of a job created before datasets (migration 010): daily
                cur.execute(query("backfill_day_datasets"), day_key(message))
                rows = cur.fetchall()
        forced = {row["dataset"]: row["force"] for row in rows}
        return [(name, forced[name]) for name in ordered(list(forced))]

    def is_synced(self, dataset: str, day: date) -> bool:
        with self._db.transaction() as cur:
            cur.execute(query("dataset_synced"), {"dataset": dataset, "day": day})
            return cur.fetchone() is not None

    def sync_dataset(self, message: DayMessage, dataset: str, force: bool, day: DayWork) -> bool:
        """Fetch, check and write one dataset of the day; False if the day was settled meanwhile."""
        spec = DATASETS[dataset]
        expected: list[str] | None = None
        if spec.expects is not None:
            self._prepare(message, spec.expects, day, refetch=force)
            expected = self._expected(dataset, message.day)
        frame = self._source.day_rows(dataset, message.day,
                                      codes=lambda: listed_codes(self._db, message.day),
                                      expected=None if expected is None else len(expected))
        try:
            compare(dataset, message.day, frame, expected, self._completeness.tolerance)
        except Incomplete:
            if day.rechecked or expected is None:
                raise
            # Perhaps the listings or the suspensions are what is out of date: once a delivery.
            day.rechecked = True
            age = self._listings.age_s()
            if age is None or age > self._completeness.listings_recheck_s:
                self._listings.refresh()
            self._prepare(message, spec.expects, day, refetch=True)
            expected = self._expected(dataset, message.day)
            compare(dataset, message.day, frame, expected, self._completeness.tolerance)
        return self._write(message, dataset, frame, None if expected is None else len(expected))

    def _prepare(self, message: DayMessage, expects: str, day: DayWork, refetch: bool) -> None:
        """The listings, and for a traded count the day's suspensions, stored and current."""
        if not day.listings_checked:
            self._listings.ensure_fresh()
            day.listings_checked = True
        if expects != "traded" or (day.suspensions_ready and not refetch):
            return
        if refetch or not self.is_synced("suspend_d", message.day):
            frame = self._source.day_rows("suspend_d", message.day,
                                          codes=lambda: listed_codes(self._db, message.day))
            with self._db.transaction() as cur:
                rows = write_rows(cur, TABLES["suspend_d"], frame)
                cur.execute(query("mark_dataset_synced"), {
                    "dataset": "suspend_d", "day": message.day, "rows": rows,
                    "expected_rows": None, "task_id": message.task_id})
        day.suspensions_ready = True

    def _expected(self, dataset: str, day: date) -> list[str] | None:
        with self._db.transaction() as cur:
            return expected_codes(cur, dataset, day)

    def _write(self, message: DayMessage, dataset: str, frame: pd.DataFrame,
               expected_rows: int | None) -> bool:
        """The dataset's rows, its synced mark and its status, in one transaction."""
        with self._db.transaction() as cur:
            cur.execute(query("lock_day"), day_key(message))
            row = cur.fetchone()
            if row is None or row["status"] not in OPEN:
                return False
            cur.execute(query("lock_day_dataset"), {**day_key(message), "dataset": dataset})
            row = cur.fetchone()
            if row is None or row["status"] != "pending":
                return True  # settled meanwhile (a permission failure seen by another day)
            rows = write_rows(cur, TABLES[dataset], frame)
            cur.execute(query("mark_dataset_synced"), {
                "dataset": dataset, "day": message.day, "rows": rows,
                "expected_rows": expected_rows, "task_id": message.task_id})
            cur.execute(query("settle_day_dataset"), {
                **day_key(message), "dataset": dataset, "status": "success", "skip_reason": None,
                "rows": rows, "expected_rows": expected_rows, "error": None, "fetched": True})
        return True

    def settle_dataset(self, message: DayMessage, dataset: str, status: str,
                       skip_reason: str | None = None, error: str | None = None) -> None:
        with self._db.transaction() as cur:
            cur.execute(query("settle_day_dataset"), {
                **day_key(message), "dataset": dataset, "status": status, "skip_reason": skip_reason,
                "rows": 0, "expected_rows": None, "error": error, "fetched": False})

    def note_attempt(self, message: DayMessage, dataset: str, exc: Exception) -> None:
        with self._db.transaction() as cur:
            cur.execute(query("dataset_attempt_failed"), {
                **day_key(message), "dataset": dataset, "error": str(exc),
                "expected_rows": getattr(exc, "expected", None)})

    def fail_dataset(self, message: DayMessage, dataset: str, error: str) -> None:
        """Fail a dataset on every open day of the job; days left with nothing open settle."""
        with self._db.transaction() as cur:
            cur.execute(query("fail_dataset_of_job"), {**day_key(message), "dataset": dataset,
                                                       "error": error})
            cur.execute(query("days_with_datasets_settled"), {"task_id": message.task_id})
            for other in [row["day"] for row in cur.fetchall()]:
                cur.execute(query("settle_day_from_datasets"),
                            {"task_id": message.task_id, "day": other})
            complete_job_if_done(cur, message.task_id)


def day_key(message: DayMessage) -> dict[str, Any]:
    return {"task_id": message.task_id, "day": message.day}
