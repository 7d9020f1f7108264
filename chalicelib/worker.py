"""Syncing one day of one job: the body of the SQS-triggered function.

Every step is safe to repeat. A day is claimed, decided (non-trading, already
synced, or fetched), and settled in the same transaction that writes its rows;
settling is guarded by the day's status, so a duplicate or redelivered message
changes nothing, and a crash before commit leaves no trace but an attempt.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from chalicelib.config import Settings
from chalicelib.db import Database, query
from chalicelib.jobs import complete_job_if_done
from chalicelib.queue import DayMessage, DayQueue
from chalicelib.source import PermanentSourceError, RateLimited, SourceError, TushareSource
from chalicelib.store import write_daily_bars
from chalicelib.trading_calendar import TradingCalendar

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """Raised to the Lambda runtime so SQS delivers the message again later."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 10.0
    max_s: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetryPolicy":
        return cls(settings.max_attempts, settings.retry_base_s, settings.retry_max_s)

    def delay_s(self, attempts: int, error: SourceError, now: float) -> float:
        if isinstance(error, RateLimited):
            # tushare's quota is per minute: the next minute is the earliest hope.
            return math.ceil(60 - now % 60) + 1
        return min(self.base_s * 2 ** (attempts - 1), self.max_s)


@dataclass(frozen=True)
class DayResult:
    outcome: str  # success, skipped, failed, retry or noop (already settled)
    rows: int = 0
    detail: str | None = None
    retry_after_s: float | None = None


class DayWorker:
    def __init__(self, db: Database, source: TushareSource, calendar: TradingCalendar,
                 queue: DayQueue, policy: RetryPolicy, clock: Callable[[], float] = time.time):
        self._db = db
        self._source = source
        self._calendar = calendar
        self._queue = queue
        self._policy = policy
        self._clock = clock

    def handle_message(self, body: str, receipt_handle: str) -> DayResult:
        """Process one SQS message; raises RetryLater to have it delivered again."""
        message = _parse(body)
        if message is None:
            return DayResult("noop", detail="malformed message")
        result = self.sync(message)
        log.info("day %s of %s: %s %s", message.day, message.task_id, result.outcome,
                 result.detail or "")
        if result.outcome == "retry":
            self._queue.delay_redelivery(receipt_handle, int(result.retry_after_s or 0))
            raise RetryLater(f"{message.day}: {result.detail}")
        return result

    def handle_dead_letter(self, body: str, receive_count: int) -> DayResult:
        """A message SQS gave up on: fail its day (unless it got settled meanwhile)."""
        message = _parse(body)
        if message is None:
            return DayResult("noop", detail="malformed message")
        reason = f"message dead-lettered after {receive_count} deliveries"
        with self._db.transaction() as cur:
            cur.execute(query("fail_day_dead_lettered"), {**_key(message), "reason": reason})
            if cur.fetchone() is None:
                return DayResult("noop", detail="already settled")
            complete_job_if_done(cur, message.task_id)
        log.warning("day %s of %s: %s", message.day, message.task_id, reason)
        return DayResult("failed", detail=reason)

    def sync(self, message: DayMessage) -> DayResult:
        claim = self._claim(message)
        if claim is None:
            return DayResult("noop", detail="already settled")
        attempts, force = claim["attempts"], claim["force"]
        try:
            if not self._calendar.is_trading_day(message.day):
                return self._settle(message, "skipped", skip_reason="non_trading_day")
            if not force and self._is_synced(message):
                return self._settle(message, "skipped", skip_reason="already_synced")
            frame = self._source.daily(message.day)
        except PermanentSourceError as exc:
            return self._fail_job(message, str(exc))
        except SourceError as exc:
            return self._retry_or_fail(message, attempts, exc)
        return self._write(message, frame)

    def _claim(self, message: DayMessage) -> dict[str, Any] | None:
        with self._db.transaction() as cur:
            cur.execute(query("claim_day"), _key(message))
            return cur.fetchone()

    def _is_synced(self, message: DayMessage) -> bool:
        with self._db.transaction() as cur:
            cur.execute(query("synced_date"), {"day": message.day})
            return cur.fetchone() is not None

    def _write(self, message: DayMessage, frame: pd.DataFrame) -> DayResult:
        with self._db.transaction() as cur:
            cur.execute(query("lock_day"), _key(message))
            row = cur.fetchone()
            if row is None or row["status"] not in ("pending", "running"):
                return DayResult("noop", detail="settled by another delivery")
            rows = write_daily_bars(cur, frame)
            cur.execute(query("mark_date_synced"),
                        {"day": message.day, "rows": rows, "task_id": message.task_id})
            self._finish(cur, message, "success", rows=rows)
        return DayResult("success", rows=rows)

    def _settle(self, message: DayMessage, status: str, skip_reason: str | None = None,
                error: str | None = None) -> DayResult:
        with self._db.transaction() as cur:
            settled = self._finish(cur, message, status, skip_reason=skip_reason, error=error)
        if not settled:
            return DayResult("noop", detail="settled by another delivery")
        return DayResult(status, detail=skip_reason or error)

    def _finish(self, cur: Any, message: DayMessage, status: str, rows: int = 0,
                skip_reason: str | None = None, error: str | None = None) -> bool:
        cur.execute(query("finish_day"), {**_key(message), "status": status, "rows": rows,
                                          "skip_reason": skip_reason, "error": error})
        if cur.fetchone() is None:
            return False
        complete_job_if_done(cur, message.task_id)
        return True

    def _retry_or_fail(self, message: DayMessage, attempts: int, exc: SourceError) -> DayResult:
        if attempts >= self._policy.max_attempts:
            return self._settle(message, "failed", error=f"{exc} (after {attempts} attempts)")
        with self._db.transaction() as cur:
            cur.execute(query("release_day"), {**_key(message), "error": str(exc)})
        delay = self._policy.delay_s(attempts, exc, self._clock())
        return DayResult("retry", detail=str(exc), retry_after_s=delay)

    def _fail_job(self, message: DayMessage, error: str) -> DayResult:
        # An invalid token fails every day alike: fail them all now rather than
        # spend every day's retries learning it again.
        with self._db.transaction() as cur:
            cur.execute(query("fail_open_days"), {"task_id": message.task_id, "error": error})
            complete_job_if_done(cur, message.task_id)
        return DayResult("failed", detail=error)


def _parse(body: str) -> DayMessage | None:
    try:
        return DayMessage.from_body(body)
    except (ValueError, KeyError, TypeError):
        # Redelivering a malformed message would only fail again: drop it.
        log.error("dropping malformed day message: %r", body[:200])
        return None


def _key(message: DayMessage) -> dict[str, Any]:
    return {"task_id": message.task_id, "day": message.day}
