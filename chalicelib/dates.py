"""What is stored for each date of a range: the calendar view of the sync page.

A date's state comes from three tables: `synced_dates` (bars written, and how
many), `trade_calendar` (the exchange's open days, cached by the worker) and the
newest job's row for that day in `sync_job_days` (in progress, failed, skipped).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Mapping

import psycopg2.extensions

from chalicelib.datasets import DATASETS
from chalicelib.db import Database, query
from chalicelib.jobs import iso
from chalicelib.source import EXCHANGE
from chalicelib.validation import check_range, parse_date

# A year and a month: a calendar page of a year, with the neighbouring months.
MAX_DATE_RANGE_DAYS = 400

# Every state a date can be in, in the order the page's legend lists them.
STATES = ("synced", "failed", "skipped", "non_trading", "not_synced", "pending", "running")


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date


def parse_date_range(params: Mapping[str, Any] | None,
                     max_days: int = MAX_DATE_RANGE_DAYS) -> DateRange:
    """`?start=YYYY-MM-DD&end=YYYY-MM-DD`, checked with the batch request's rules and words."""
    params = params or {}
    start = parse_date(params, "start")
    end = parse_date(params, "end")
    check_range(start, end, max_days, names=("start", "end"))
    return DateRange(start, end)


@dataclass(frozen=True)
class DateState:
    """One calendar date: its state and what explains it."""
    date: str
    state: str  # one of STATES
    trading: bool | None  # None: a weekday of a year whose exchange calendar is not cached yet
    rows: int | None  # bars stored (synced), or written so far by the latest job
    error: str | None  # the latest job's error for the day (failed, or a retry under way)
    skip_reason: str | None  # non_trading_day, already_synced, cancelled, queue_unavailable
    task_id: str | None  # the latest job that included the day
    synced_at: str | None
    # Per dataset stored or in the latest job: {state, rows, expected, skip_reason, error}.
    # state: synced, short (fewer rows than the listings say, or failed for it), failed,
    # skipped, pending. `short`: some dataset of the date is.
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    short: bool = False


@dataclass(frozen=True)
class DatesReport:
    start: str
    end: str
    today: str
    max_range_days: int  # the batch request's limit, so a page can check before it sends
    counts: dict[str, int] = field(default_factory=dict)
    dates: list[DateState] = field(default_factory=list)
    short_days: int = 0  # dates with a short dataset (DateState.short)
    datasets: list[str] = field(default_factory=lambda: list(DATASETS))  # names DateState.datasets may hold

    def as_json(self) -> dict[str, Any]:
        # Every field of a DateState is a str, bool, int or None (or a small dict of
        # them): a shallow copy is what dataclasses.asdict would build, at a tenth of its
        # cost (400 dates a request).
        return {"start": self.start, "end": self.end, "today": self.today,
                "max_range_days": self.max_range_days, "counts": dict(self.counts),
                "short_days": self.short_days, "datasets": list(self.datasets),
                "dates": [dict(vars(day)) for day in self.dates]}


def state_of(row: Mapping[str, Any]) -> DateState:
    """Decide a date's state from its row of the `date_states` query.

    Work under way wins (the page is watching it), then stored bars, then the
    calendar, then the latest job's outcome; a date nothing is known of is
    `not_synced`.
    """
    job_status = row["job_status"]
    skip_reason = row["skip_reason"]
    trading = row["is_open"]
    # Before the worker caches a year's calendar: the exchanges never open on a Saturday
    # or a Sunday (make-up working days included), and a job may have found it closed.
    if trading is None and (row["day"].weekday() >= 5 or skip_reason == "non_trading_day"):
        trading = False
    if job_status in ("pending", "running"):
        state = job_status
    elif row["synced_rows"] is not None:
        state = "synced"
    elif trading is False:
        state = "non_trading"
    elif job_status == "failed":
        state = "failed"
    elif job_status == "skipped":
        state = "skipped"
    else:
        state = "not_synced"
    rows = row["synced_rows"] if row["synced_rows"] is not None else (row["rows_written"] or None)
    datasets = dataset_states(row.get("synced"), row.get("job_datasets"),
                              job_status in ("pending", "running"))
    return DateState(
        date=row["day"].isoformat(), state=state, trading=trading,
        rows=int(rows) if rows is not None else None, error=row["error"],
        skip_reason=skip_reason, task_id=row["task_id"], synced_at=iso(row["synced_at"]),
        datasets=datasets, short=any(d["state"] == "short" for d in datasets.values()),
    )


def dataset_states(synced: dict[str, Any] | None, job: dict[str, Any] | None,
                   day_open: bool) -> dict[str, dict[str, Any]]:
    """Each dataset's state on a date from its synced mark ([rows, expected]) and the
    newest job's row for it."""
    synced, job = synced or {}, job or {}
    states: dict[str, dict[str, Any]] = {}
    for name in DATASETS:
        mark, latest = synced.get(name), job.get(name)
        if mark is None and latest is None:
            continue
        entry: dict[str, Any] = {"state": None, "rows": None, "expected": None,
                                 "skip_reason": None, "error": None}
        if latest is not None:
            entry.update(rows=latest.get("rows"), expected=latest.get("expected"),
                         skip_reason=latest.get("skip_reason"), error=latest.get("error"))
        if latest is not None and latest.get("status") == "pending" and day_open:
            entry["state"] = "pending"
        elif mark is not None:
            rows, expected = mark[0], mark[1]
            entry.update(rows=rows, expected=expected, error=None, skip_reason=None)
            entry["state"] = "short" if expected is not None and rows < expected else "synced"
        elif latest.get("status") == "failed":
            # A count that disagreed is what a failure with an expected count means.
            entry["state"] = "short" if latest.get("expected") is not None else "failed"
        elif latest.get("status") in ("skipped", "success"):
            entry["state"] = "skipped" if latest.get("status") == "skipped" else "synced"
        else:
            entry["state"] = "pending"
        states[name] = entry
    return states


class DateStates:
    def __init__(self, db: Database):
        self._db = db

    def states(self, dates: DateRange) -> list[DateState]:
        with self._db.transaction() as cur:
            # Plain tuples, zipped with the names: up to 400 rows a request, and building
            # the pool's RealDictRows would cost more than the query itself.
            with cur.connection.cursor(cursor_factory=psycopg2.extensions.cursor) as plain:
                plain.execute(query("date_states"), {"start": dates.start, "end": dates.end,
                                                     "exchange": EXCHANGE})
                names = [column.name for column in plain.description]
                rows = plain.fetchall()
        return [state_of(dict(zip(names, row))) for row in rows]

    def report(self, dates: DateRange, today: date, max_range_days: int) -> DatesReport:
        states = self.states(dates)
        counts = {state: 0 for state in STATES}
        for day in states:
            counts[day.state] += 1
        return DatesReport(start=dates.start.isoformat(), end=dates.end.isoformat(),
                           today=today.isoformat(), max_range_days=max_range_days,
                           counts=counts, dates=states,
                           short_days=sum(1 for day in states if day.short))

