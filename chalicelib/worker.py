"""Syncing one day of one job: the body of the SQS-triggered function.

Every step is safe to repeat. A delivery claims the day under a lease, decides it
(non-trading, already synced, or fetched), and settles it in the transaction that
writes its rows; settling is guarded by the day's status, so a duplicate or
redelivered message changes nothing, and a crash before commit leaves no trace
but an attempt.

A delivery ends in one of four ways, each for a reason:
- consumed: the day was settled (by this delivery or before), its job is paused (the
  resume sends the day again: a paused job's messages neither spin nor count attempts),
  or the body can never be processed (dropped with one log line saying why);
- returned with the retry backoff as its visibility: the source failed transiently;
- returned at the end of another delivery's live lease: that one is working on the day;
- handed to a fresh, delayed copy of itself: the database could not be reached. The
  copy's receive count starts again at zero, so an outage of any length never pushes a
  day towards the dead-letter queue, and the backoff (2 s doubling to 20 s) brings the
  batch back within seconds of the database's return.

What happens to each dataset of the day (fetch, completeness, write) is day_datasets.py's;
this module decides what a delivery's outcome means for the day, its job and its message.
"""
from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable

from chalicelib.completeness import CompletenessPolicy, Incomplete, Listings
from chalicelib.config import Settings, published_through
from chalicelib.day_datasets import OPEN, DayDatasets, DayWork, day_key
from chalicelib.db import Database, query
from chalicelib.errors import ServiceUnavailable
from chalicelib.jobs import complete_job_if_done
from chalicelib.queue import DayMessage, DayQueue, MalformedMessage, QueueError, parse_day_message, preview
from chalicelib.quota import QuotaExhausted, wait_no_later_than
from chalicelib.source import (PermanentSourceError, RateLimited, SourceError, TransientSourceError,
                               TushareSource)
from chalicelib.trading_calendar import TradingCalendar

log = logging.getLogger(__name__)

ENDED = ("completed", "cancelled")  # a job's statuses after which none of its days may start
# Seconds until a message that found the database down is delivered again, by how many
# deliveries in a row found it down; the last step repeats for as long as the outage lasts.
OUTAGE_BACKOFF_S = (2, 4, 8, 16, 20)
# The worker function's timeout (.chalice/config.json) plus this margin, when no settings say.
DEFAULT_LEASE_S = 135.0


def outage_delay_s(outages: int) -> int:
    return OUTAGE_BACKOFF_S[min(max(outages, 0), len(OUTAGE_BACKOFF_S) - 1)]


class RetryLater(Exception):
    """Raised to the Lambda runtime: this delivery did not settle its day."""


class DatabaseDown(Exception):
    """The database failed mid-delivery; `lease` is the token of the claim held, if any."""

    def __init__(self, lease: str | None):
        super().__init__("database unavailable")
        self.lease = lease


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
class Lease:
    """A claim on a day: its token, the day's attempts counting this one, the job's force
    flag, and whether the claim counted a new attempt (not a hand-off resuming its own)."""
    token: str
    attempts: int
    force: bool
    new_attempt: bool = True


@dataclass(frozen=True)
class DayResult:
    # success, skipped, failed (settled now); retry, leased (delivered again later);
    # quota (the shared tushare quota is in use: a fresh copy of the message comes later,
    # no attempt spent); noop (nothing to do), paused (its job is paused: consumed, the
    # resume sends the day again), dropped (a body no delivery could process)
    outcome: str
    rows: int = 0
    detail: str | None = None
    retry_after_s: float | None = None


class DayWorker:
    def __init__(self, db: Database, source: TushareSource, calendar: TradingCalendar,
                 queue: DayQueue, policy: RetryPolicy, clock: Callable[[], float] = time.time,
                 lease_s: float = DEFAULT_LEASE_S, publish_time: str = "17:00",
                 completeness: CompletenessPolicy = CompletenessPolicy(),
                 listings: Listings | None = None, now: Callable[[], float] = time.time):
        self._db = db
        self._calendar = calendar
        self._queue = queue
        self._policy = policy
        self._clock = clock
        self._lease_s = lease_s
        self._publish_time = publish_time
        self._now = now  # what time it is in Shanghai decides what is published (`clock` paces retries)
        self._datasets = DayDatasets(db, source, completeness, listings)

    def handle_message(self, body: Any, receipt_handle: str) -> DayResult:
        """Process one SQS message; raises RetryLater when it must be delivered again."""
        try:
            message = parse_day_message(body)
        except MalformedMessage as exc:
            # Redelivering it would only fail the same way: consume it.
            log.warning("day message dropped: %s; body %s", exc, preview(body))
            return DayResult("dropped", detail=str(exc))
        try:
            result = self.sync(message)
        except DatabaseDown as down:
            self._hand_off(message, receipt_handle, down)
            raise RetryLater(f"{message.day}: database unavailable") from down
        log.info("day %s of %s: %s %s", message.day, message.task_id, result.outcome,
                 result.detail or "")
        if result.outcome == "quota":
            self._hand_back(message, receipt_handle, result)
            raise RetryLater(f"{message.day}: {result.detail}")
        if result.retry_after_s is not None:
            self._queue.delay_redelivery(receipt_handle, math.ceil(result.retry_after_s))
            raise RetryLater(f"{message.day}: {result.detail}")
        return result

    def handle_dead_letter(self, body: Any, receive_count: Any) -> DayResult:
        """A message SQS gave up on: fail its day (unless it got settled meanwhile)."""
        try:
            message = parse_day_message(body)
        except MalformedMessage as exc:
            log.warning("dead letter dropped: %s; body %s", exc, preview(body))
            return DayResult("dropped", detail=str(exc))
        reason = f"message dead-lettered after {_count(receive_count)} deliveries"
        with self._db.transaction() as cur:
            cur.execute(query("fail_day_dead_lettered"), {**day_key(message), "reason": reason})
            row = cur.fetchone()
            if row is None:
                log.info("dead letter for day %s of %s: already settled or no such day",
                         message.day, message.task_id)
                return DayResult("noop", detail="already settled")
            complete_job_if_done(cur, message.task_id)
        log.warning("day %s of %s: %s (%s)", message.day, message.task_id, reason, row["status"])
        return DayResult(row["status"], detail=reason)

    def sync(self, message: DayMessage) -> DayResult:
        """Claim, decide, fetch, write and settle one day; raises DatabaseDown."""
        try:
            claim = self._claim(message)
        except ServiceUnavailable as exc:
            if exc.code != "database_unavailable":
                raise
            # The claim did not commit (or it is unknowable whether it did): the lease
            # the message carried, if any, is still the one to resume.
            raise DatabaseDown(message.lease) from exc
        if isinstance(claim, DayResult):
            return claim
        try:
            # Waiting for the shared quota must leave the lease time to write: past half of
            # it the day goes back to the queue instead (no other delivery can claim it early).
            with wait_no_later_than(time.monotonic() + self._lease_s / 2):
                return self._work(message, claim)
        except ServiceUnavailable as exc:
            if exc.code != "database_unavailable":
                raise
            raise DatabaseDown(claim.token) from exc

    def _claim(self, message: DayMessage) -> Lease | DayResult:
        key = day_key(message)
        with self._db.transaction() as cur:
            cur.execute(query("lock_day_for_claim"), key)
            day = cur.fetchone()
            if day is None:
                return DayResult("noop", detail="no such job day")
            if day["status"] not in OPEN:
                return DayResult("noop", detail="already settled")
            resuming = message.lease is not None and message.lease == day["lease_token"]
            if day["lease_live"] and not resuming:
                # Someone is working on it: look again when its lease ends, which
                # also covers that worker dying. Not an attempt.
                left = day["lease_left_s"]
                return DayResult("leased", detail=f"another delivery holds it for {left} s more",
                                 retry_after_s=left + 1)
            # The job as it is now, the day locked: a pause locks the days it could claim
            # first, so it either waited for this claim or committed before it (seen here).
            cur.execute(query("job_for_claim"), key)
            job = cur.fetchone()
            if job["status"] in ENDED:
                cur.execute(query("settle_cancelled_day"), key)
                return DayResult("skipped", detail="cancelled")
            if job["status"] == "paused":
                # Consumed, neither claimed nor counted: the resume sends the day again.
                if resuming:  # its own claim, handed off in a database outage: let it go
                    cur.execute(query("release_paused_day"), {**key, "lease_token": message.lease})
                return DayResult("paused", detail="its job is paused; the resume sends it again")
            if job["status"] != "running":
                return DayResult("noop", detail=f"its job is {job['status']}")
            token = uuid.uuid4().hex  # a new token even when resuming: a duplicate of the hand-off finds it taken
            cur.execute(query("claim_day"), {**key, "lease_token": token, "lease_s": self._lease_s,
                                             "new_attempt": not resuming})
            attempts = cur.fetchone()["attempts"]
        return Lease(token=token, attempts=attempts, force=job["force"], new_attempt=not resuming)

    def _work(self, message: DayMessage, lease: Lease) -> DayResult:
        try:
            if not self._calendar.is_trading_day(message.day):
                return self._skip_day(message, "non_trading_day")
        except QuotaExhausted as exc:
            return self._quota_wait(message, lease, exc)
        except PermanentSourceError as exc:
            return self._fail_job(message, str(exc))
        except SourceError as exc:
            return self._retry_or_fail(message, lease, {"trade_cal": exc})
        if message.day > published_through(datetime.fromtimestamp(self._now(), timezone.utc),
                                           self._publish_time):
            # Not fetched, not failed, never marked synced: a later job syncs it.
            return self._skip_day(message, "not_published_yet")
        datasets = self._datasets
        day = DayWork(message.day)
        errors: dict[str, Exception] = {}
        for dataset, forced in datasets.open_datasets(message):
            try:
                if not (lease.force or forced) and datasets.is_synced(dataset, message.day):
                    datasets.settle_dataset(message, dataset, "skipped", skip_reason="already_synced")
                    continue
                if not datasets.sync_dataset(message, dataset, lease.force or forced, day):
                    return DayResult("noop", detail="settled by another delivery")
            except QuotaExhausted as exc:
                return self._quota_wait(message, lease, exc)
            except PermanentSourceError as exc:
                if exc.scope != "api":
                    return self._fail_job(message, str(exc))
                # No permission for this interface: its days fail, the job's other datasets go on.
                datasets.fail_dataset(message, dataset, str(exc))
            except (SourceError, Incomplete) as exc:
                errors[dataset] = exc
                datasets.note_attempt(message, dataset, exc)
        if errors:
            return self._retry_or_fail(message, lease, errors)
        return self._settle_day(message)

    def _skip_day(self, message: DayMessage, reason: str) -> DayResult:
        with self._db.transaction() as cur:
            cur.execute(query("skip_day_datasets"), {**day_key(message), "skip_reason": reason})
            cur.execute(query("settle_day_from_datasets"), day_key(message))
            settled = cur.fetchone()
            if settled is None:  # a day without dataset rows
                return self._settle_in(cur, message, "skipped", skip_reason=reason)
            complete_job_if_done(cur, message.task_id)
        return DayResult(settled["status"], detail=settled["skip_reason"])

    def _settle_day(self, message: DayMessage) -> DayResult:
        with self._db.transaction() as cur:
            cur.execute(query("settle_day_from_datasets"), day_key(message))
            settled = cur.fetchone()
            if settled is None:
                return DayResult("noop", detail="settled by another delivery")
            complete_job_if_done(cur, message.task_id)
        return DayResult(settled["status"], rows=int(settled["rows_written"] or 0),
                         detail=settled["skip_reason"] or settled["error"])

    def _settle_in(self, cur: Any, message: DayMessage, status: str,
                   skip_reason: str | None = None, error: str | None = None) -> DayResult:
        settled = self._finish(cur, message, status, skip_reason=skip_reason, error=error)
        if settled is None:
            return DayResult("noop", detail="settled by another delivery")
        return DayResult(settled["status"], detail=settled["skip_reason"] or error)

    def _finish(self, cur: Any, message: DayMessage, status: str, rows: int = 0,
                skip_reason: str | None = None, error: str | None = None) -> dict[str, Any] | None:
        cur.execute(query("finish_day"), {**day_key(message), "status": status, "rows": rows,
                                          "skip_reason": skip_reason, "error": error})
        settled = cur.fetchone()
        if settled is not None:
            complete_job_if_done(cur, message.task_id)
        return settled

    def _retry_or_fail(self, message: DayMessage, lease: Lease,
                       errors: dict[str, Exception]) -> DayResult:
        summary = "; ".join(f"{name}: {exc}" for name, exc in errors.items())
        if lease.attempts >= self._policy.max_attempts:
            suffix = f" (after {lease.attempts} attempts)"
            with self._db.transaction() as cur:
                cur.execute(query("fail_day_datasets"), {**day_key(message), "error": summary,
                                                         "suffix": suffix})
                cur.execute(query("settle_day_from_datasets"), day_key(message))
                settled = cur.fetchone()
                if settled is None:
                    return self._settle_in(cur, message, "failed", error=summary + suffix)
                complete_job_if_done(cur, message.task_id)
            return DayResult(settled["status"], detail=settled["error"])
        with self._db.transaction() as cur:
            cur.execute(query("release_day"), {**day_key(message), "error": summary,
                                               "lease_token": lease.token})
            released = cur.fetchone()
        if released is None:
            return DayResult("noop", detail="settled or taken over by another delivery")
        if released["status"] == "skipped":  # its job ended meanwhile: no retry
            return DayResult("skipped", detail="cancelled")
        limited = next((e for e in errors.values() if isinstance(e, RateLimited)), None)
        first = limited or next(iter(errors.values()))
        error = first if isinstance(first, SourceError) else TransientSourceError(str(first))
        delay = self._policy.delay_s(lease.attempts, error, self._clock())
        return DayResult("retry", detail=summary, retry_after_s=delay)

    def _quota_wait(self, message: DayMessage, lease: Lease, exc: QuotaExhausted) -> DayResult:
        """The shared quota has no call free for a while: hand the day back unspent."""
        with self._db.transaction() as cur:
            cur.execute(query("release_day_unspent"), {
                **day_key(message), "lease_token": lease.token, "undo_attempt": lease.new_attempt})
            released = cur.fetchone()
        if released is None:
            return DayResult("noop", detail="settled or taken over by another delivery")
        if released["status"] == "skipped":
            return DayResult("skipped", detail="cancelled")
        return DayResult("quota", detail=str(exc), retry_after_s=exc.retry_in_s)

    def _fail_job(self, message: DayMessage, error: str) -> DayResult:
        # An invalid token fails every day alike: fail them all now rather than
        # spend every day's retries learning it again.
        with self._db.transaction() as cur:
            cur.execute(query("fail_open_days"), {"task_id": message.task_id, "error": error})
            complete_job_if_done(cur, message.task_id)
        return DayResult("failed", detail=error)

    def _hand_off(self, message: DayMessage, receipt_handle: str, down: DatabaseDown) -> None:
        """Bring the message back in seconds, without SQS counting this delivery if it can be helped."""
        delay = outage_delay_s(message.outages)
        where = f"day {message.day} of {message.task_id}"
        if self._database_answers():
            # Not an outage after all (one statement failed, or the database just came
            # back): an ordinary retry, which SQS counts towards the dead-letter queue.
            log.warning("%s: database error (%s); back in %s s", where,
                        str(_root_cause(down)).strip(), delay)
            self._queue.delay_redelivery(receipt_handle, delay)
            return
        successor = replace(message, lease=down.lease, outages=message.outages + 1)
        if self._replace_message(receipt_handle, successor, delay, "database unreachable"):
            log.warning("%s: database unreachable (%s in a row); a fresh copy is due in %s s",
                        where, successor.outages, delay)

    def _hand_back(self, message: DayMessage, receipt_handle: str, result: DayResult) -> None:
        """A day the quota could not serve: a fresh delayed copy (its receive count starts
        at zero, so waiting for the quota never walks a day towards the dead-letter queue)."""
        delay = max(1, math.ceil(result.retry_after_s or 1))
        successor = replace(message, lease=None, outages=0)
        self._replace_message(receipt_handle, successor, delay, "quota wait")

    def _replace_message(self, receipt_handle: str, successor: DayMessage, delay: int, why: str) -> bool:
        """Send `successor` due in `delay` s and delete the delivered message; if the queue
        refuses the copy, the delivered one comes back in `delay` s instead (False)."""
        where = f"day {successor.day} of {successor.task_id}"
        try:
            self._queue.send_later(successor, delay)
        except QueueError as exc:
            log.warning("%s: %s, and the queue refused a fresh copy (%s); back in %s s",
                        where, why, exc, delay)
            self._queue.delay_redelivery(receipt_handle, delay)
            return False
        try:
            self._queue.delete(receipt_handle)
        except QueueError as exc:  # the original comes back later as a harmless duplicate
            log.warning("%s: could not delete the message a fresh copy replaces: %s", where, exc)
        return True

    def _database_answers(self) -> bool:
        try:
            with self._db.transaction() as cur:
                cur.execute(query("ping"))
            return True
        except ServiceUnavailable:
            return False


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _count(value: Any) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return "?"
