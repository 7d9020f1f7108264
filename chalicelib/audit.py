"""The audit: per trade date and dataset, what is stored against what should be.

For each trading day of a range (the exchange calendar, cached; a year not cached yet is
fetched once) and each dataset asked for, a (day, dataset) pair is
  missing   - no rows stored;
  short     - fewer rows than the listings say the date has (listed, and for daily and
              daily_basic not suspended; chalicelib.completeness), or fewer than were
              written when it was synced (rows deleted since);
  mismatch  - more rows than the listings say, or (with `recheck`) a count different
              from what tushare answers for the date now;
  ok        - none of these;
  not_published - today before the publish time: nothing to expect yet.
`faulty_pairs()` (missing, short, mismatch) is exactly what a fill job syncs.

Counting is read-only and spends no quota. `recheck` asks tushare for each pair that
looks ok, and so spends quota: at most AUDIT_RECHECK_MAX pairs a request (default 31),
each call taken from the shared quota without waiting longer than RECHECK_WAIT_S, and
within RECHECK_BUDGET_S of the request's time; pairs past a bound are reported as not
rechecked (`recheck_stopped` says which bound).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

from chalicelib.completeness import listed_codes
from chalicelib.config import published_through
from chalicelib.datasets import DATASETS
from chalicelib.dates import MAX_DATE_RANGE_DAYS, parse_date_range
from chalicelib.db import Database, query
from chalicelib.errors import ServiceUnavailable, ValidationError
from chalicelib.quota import QuotaExhausted
from chalicelib.source import EXCHANGE, SourceError, TushareSource
from chalicelib.store import TABLES
from chalicelib.trading_calendar import TradingCalendar
from chalicelib.validation import parse_datasets

MAX_AUDIT_DAYS = MAX_DATE_RANGE_DAYS  # the calendar's range: a year and a month
FAULTY = ("missing", "short", "mismatch")
STATES = ("ok", *FAULTY, "not_published")
RECHECK_WAIT_S = 3.0
RECHECK_BUDGET_S = 15.0
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class AuditRequest:
    start: date
    end: date
    datasets: tuple[str, ...]
    recheck: bool = False


def parse_audit_request(params: Any, today: date, from_body: bool = False) -> AuditRequest:
    """`start`, `end` (YYYY-MM-DD, at most 400 days, not after today), `datasets` (names,
    comma-separated in a query string; default daily), `recheck` (true/false)."""
    if from_body and not isinstance(params, dict):
        raise ValidationError("body_not_object", "请求体必须是 JSON 对象，包含 start 和 end",
                              "The request body must be a JSON object with start and end")
    params = params or {}
    dates = parse_date_range(params, MAX_AUDIT_DAYS)
    if dates.end > today:
        raise ValidationError("end_in_future", f"结束日期 {dates.end} 不能晚于今天 {today}（北京时间）",
                              f"end {dates.end} must not be after today {today} (Beijing time)")
    recheck = params.get("recheck", False)
    if isinstance(recheck, str) and recheck.strip().lower() in _TRUE | _FALSE:
        recheck = recheck.strip().lower() in _TRUE
    if not isinstance(recheck, bool):
        raise ValidationError("recheck_type", "recheck 必须是 true 或 false",
                              "recheck must be true or false")
    return AuditRequest(dates.start, dates.end, parse_datasets(params.get("datasets")), recheck)


@dataclass(frozen=True)
class AuditPolicy:
    publish_time: str = "17:00"
    tolerance: int = 0
    recheck_max: int = 31


@dataclass
class AuditReport:
    start: str
    end: str
    datasets: list[str]
    recheck: bool
    published_through: str
    counts: dict[str, int] = field(default_factory=dict)
    days: list[dict[str, Any]] = field(default_factory=list)
    rechecked: int = 0
    recheck_limit: int = 0
    recheck_stopped: str | None = None  # limit, quota, time or source: why some were not rechecked

    def faulty(self) -> list[dict[str, Any]]:
        return [{"date": day["date"], "dataset": name, **entry}
                for day in self.days for name, entry in day["datasets"].items()
                if entry["state"] in FAULTY]

    def faulty_pairs(self) -> list[tuple[date, str]]:
        return [(date.fromisoformat(item["date"]), item["dataset"]) for item in self.faulty()]

    def as_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "datasets": self.datasets,
                "recheck": self.recheck, "published_through": self.published_through,
                "counts": self.counts, "faulty": self.faulty(), "days": self.days,
                "rechecked": self.rechecked, "recheck_limit": self.recheck_limit,
                "recheck_stopped": self.recheck_stopped}


class Audit:
    def __init__(self, db: Database, source: TushareSource, calendar: TradingCalendar,
                 policy: AuditPolicy = AuditPolicy(), clock: Any = time.time):
        self._db = db
        self._source = source
        self._calendar = calendar
        self._policy = policy
        self._clock = clock

    def report(self, request: AuditRequest) -> AuditReport:
        trading = self._trading_days(request.start, request.end)
        published = published_through(datetime.fromtimestamp(self._clock(), timezone.utc),
                                      self._policy.publish_time)
        names = list(request.datasets)
        params = {"start": request.start, "end": request.end, "datasets": names}
        with self._db.transaction() as cur:
            stored: dict[str, dict[date, int]] = {}
            for name in names:
                cur.execute(TABLES[name].query("day_counts"), params)
                stored[name] = {row["trade_date"]: int(row["n"]) for row in cur.fetchall()}
            cur.execute(query("audit_synced"), params)
            marks = {(row["dataset"], row["trade_date"]): row for row in cur.fetchall()}
            cur.execute(query("source_refreshed"), {"name": "stock_basic"})
            listings_known = cur.fetchone() is not None
            expected: dict[date, dict[str, Any]] = {}
            if listings_known and trading:
                cur.execute(query("audit_expected"), {"days": trading})
                expected = {row["day"]: row for row in cur.fetchall()}
        report = AuditReport(start=request.start.isoformat(), end=request.end.isoformat(),
                             datasets=names, recheck=request.recheck,
                             published_through=published.isoformat(),
                             recheck_limit=self._policy.recheck_max if request.recheck else 0)
        for day in trading:
            entries: dict[str, dict[str, Any]] = {}
            for name in names:
                mark = marks.get((name, day))
                entry = {"state": "ok", "stored": stored[name].get(day, 0),
                         "expected": _expected(name, expected.get(day), mark),
                         "synced_rows": None if mark is None else mark["rows"], "source_rows": None}
                entry["state"] = "not_published" if day > published else self._state(name, entry)
                entries[name] = entry
            report.days.append({"date": day.isoformat(), "datasets": entries})
        if request.recheck:
            self._recheck(report)
        report.counts = {state: 0 for state in STATES}
        for day in report.days:
            for entry in day["datasets"].values():
                report.counts[entry["state"]] += 1
        return report

    def _state(self, name: str, entry: dict[str, Any]) -> str:
        stored, expected, synced = entry["stored"], entry["expected"], entry["synced_rows"]
        tolerance = self._policy.tolerance
        if stored == 0 and (DATASETS[name].expects is not None or synced is None):
            return "missing"
        if synced is not None and stored < synced:
            return "short"
        if expected is not None and stored < expected - tolerance:
            return "short"
        if expected is not None and stored > expected + tolerance:
            return "mismatch"
        return "ok"

    def _recheck(self, report: AuditReport) -> None:
        deadline = time.monotonic() + RECHECK_BUDGET_S
        for day in report.days:
            for name, entry in day["datasets"].items():
                if entry["state"] != "ok":
                    continue
                if report.rechecked >= self._policy.recheck_max:
                    report.recheck_stopped = "limit"
                    return
                if time.monotonic() > deadline:
                    report.recheck_stopped = "time"
                    return
                try:
                    when = date.fromisoformat(day["date"])
                    frame = self._source.day_rows(name, when,
                                                  codes=lambda: listed_codes(self._db, when),
                                                  expected=entry["stored"] or None,
                                                  quota_wait_s=RECHECK_WAIT_S)
                except QuotaExhausted:
                    report.recheck_stopped = "quota"
                    return
                except SourceError:
                    report.recheck_stopped = "source"
                    return
                report.rechecked += 1
                entry["source_rows"] = len(frame)
                if len(frame) != entry["stored"]:
                    entry["state"] = "mismatch"

    def _trading_days(self, start: date, end: date) -> list[date]:
        with self._db.transaction() as cur:
            cur.execute(query("calendar_range"), {"exchange": EXCHANGE, "start": start, "end": end})
            known = {row["cal_date"]: row["is_open"] for row in cur.fetchall()}
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        try:
            for year in sorted({d.year for d in days if d not in known}):
                probe = max(start, date(year, 1, 1))
                self._calendar.is_trading_day(probe)  # caches the whole year
        except (SourceError, QuotaExhausted) as exc:
            raise ServiceUnavailable.source(exc) from exc
        if any(d not in known for d in days):
            with self._db.transaction() as cur:
                cur.execute(query("calendar_range"), {"exchange": EXCHANGE, "start": start, "end": end})
                known = {row["cal_date"]: row["is_open"] for row in cur.fetchall()}
        return [d for d in days if known.get(d)]


def _expected(name: str, counts: Mapping[str, Any] | None, mark: Mapping[str, Any] | None) -> int | None:
    expects = DATASETS[name].expects
    if expects is None:
        return None
    if counts is not None:
        if expects == "listed":
            return int(counts["listed"])
        if counts["suspensions_known"]:
            return int(counts["traded"])
    return None if mark is None or mark["expected_rows"] is None else int(mark["expected_rows"])
