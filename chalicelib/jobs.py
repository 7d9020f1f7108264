"""Batch-sync jobs: create (lock, insert, enqueue), progress, pause, resume, cancel, retry,
history.

A job is `running`, `paused`, `completed` or `cancelled`; running and paused are active
(one at a time), completed and cancelled have ended. A job ends in exactly two places,
`complete_job_if_done` and `JobService.cancel`; a retry re-opens an ended job, so a job
may end more than once (its `endings` count says which ending is which; `retries`, how
many times it was re-opened).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Callable

import psycopg2.errors

from chalicelib.db import Database, query
from chalicelib.datasets import DATASETS
from chalicelib.errors import Conflict, NotFound, ServiceUnavailable, ValidationError
from chalicelib.limits import WriteLimits
from chalicelib.notices import record_ending
from chalicelib.progress import ENDED, Progress, iso, progress_from_row
from chalicelib.queue import DayQueue, QueueError
from chalicelib.validation import BatchRequest

log = logging.getLogger(__name__)

# The key of the advisory lock that serialises job creation.
JOB_CREATION_LOCK_KEY = 0x5710C5_02

CANCEL_MESSAGES = {
    "cancelled": "批量同步已取消",
    "queue_unavailable": "消息队列不可用，任务已取消",
}


@dataclass(frozen=True)
class CreatedJob:
    task_id: str
    total_days: int
    message: str


@dataclass(frozen=True)
class RetriedJob:
    task_id: str
    retry_days: int  # the failed days re-opened
    retries: int  # how many times the job has been retried, this one included
    message: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def complete_job_if_done(cur: Any, task_id: str) -> bool:
    """Mark the job completed if none of its days is open; call after settling a day.
    Returns whether this call ended the job.

    Without the job row's lock, two last days committing together would each
    still see the other open, and the job would never be completed. The ending's
    history line and completion notices are written in the same transaction
    (chalicelib.notices).
    """
    cur.execute(query("lock_job"), {"task_id": task_id})
    cur.execute(query("complete_job_if_done"), {"task_id": task_id})
    if cur.fetchone() is None:
        return False
    record_event(cur, task_id, "completed")
    record_ending(cur, task_id)
    return True


def record_event(cur: Any, task_id: str, kind: str, actor: str | None = None,
                 detail: dict[str, Any] | None = None) -> None:
    """One line of the job's history (sync_job_events), in the caller's transaction."""
    cur.execute(query("insert_job_event"), {"task_id": task_id, "kind": kind, "actor": actor,
                                            "detail": json.dumps(detail) if detail else None})


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (iso(v) if isinstance(v, (date, datetime)) else v) for k, v in row.items()}


class JobService:
    def __init__(self, db: Database, queue: DayQueue, clock: Callable[[], float] = time.time,
                 limits: WriteLimits = WriteLimits()):
        self._db = db
        self._queue = queue
        self._clock = clock
        self._limits = limits

    def create(self, request: BatchRequest, created_by: str | None = None) -> CreatedJob:
        """Insert the job and its days under the creation lock, then enqueue the days.

        The messages go out only after commit, so a worker never sees a day
        that is not in the database yet. `created_by` is the caller's token name;
        its write limits are checked under the same lock.
        """
        days = request.days

        def insert_days(cur: Any, task_id: str) -> None:
            cur.execute(query("insert_job_days"), {"task_id": task_id,
                        "start_date": request.start_date, "end_date": request.end_date})
            cur.execute(query("insert_job_day_datasets"), {"task_id": task_id,
                                                           "datasets": list(request.datasets)})
        return self._start(request, f"批量同步任务已启动，将同步 {len(days)} 天的数据", created_by,
                           days, insert_days, {"days": len(days), "force": request.force,
                                               "datasets": list(request.datasets)})

    def _start(self, request: BatchRequest, message: str, created_by: str | None, days: list[date],
               insert_days: Callable[[Any, str], None], event: dict[str, Any],
               kind: str = "sync") -> CreatedJob:
        """The job row, its days (`insert_days`) and its created event under the creation
        lock and the caller's write limits, then the days' messages."""
        try:
            with self._db.transaction() as cur:
                cur.execute(query("lock_job_creation"), {"lock_key": JOB_CREATION_LOCK_KEY})
                self._limits.check(cur, created_by, request.force)
                self._refuse_if_active(cur)
                task_id = self._insert_job(cur, request, message, created_by, kind=kind)
                insert_days(cur, task_id)
                record_event(cur, task_id, "created", created_by, event)
        except psycopg2.errors.UniqueViolation:
            self._conflict_after_race()
        self._enqueue(task_id, days)
        return CreatedJob(task_id=task_id, total_days=len(days), message=message)

    def _refuse_if_active(self, cur: Any) -> None:
        cur.execute(query("active_job"))
        active = cur.fetchone()
        if active:
            raise Conflict.job_active(active["task_id"], active["status"])

    def _conflict_after_race(self) -> None:
        # The one-active-job index caught what the lock should have: still a conflict.
        with self._db.transaction() as cur:
            cur.execute(query("active_job"))
            active = cur.fetchone()
        if active:
            raise Conflict.job_active(active["task_id"], active["status"]) from None
        raise Conflict.job_running("") from None

    def fill(self, pairs: list[tuple[date, str]], created_by: str | None = None,
             max_days: int = 90) -> CreatedJob:
        """Start one job that syncs exactly these (day, dataset) pairs, each forced: an
        audit's faulty pairs. A normal job otherwise: the one-job rule, the caller's write
        limits (a start, not a forced re-sync: it re-fetches only what is known broken)."""
        if not pairs:
            raise Conflict.nothing_to_fill()
        days = sorted({day for day, _ in pairs})
        if len(days) > max_days:
            raise ValidationError(
                "fill_too_many_days",
                f"需要补全的日期过多（{len(days)} 天，上限 {max_days} 天），请缩小范围后重试",
                f"Too many days to fill ({len(days)}, at most {max_days}); audit a shorter range")
        datasets = [name for name in DATASETS if any(ds == name for _, ds in pairs)]
        request = BatchRequest(days[0], days[-1], False, tuple(datasets))
        ordered_pairs = sorted(pairs)

        def insert_days(cur: Any, task_id: str) -> None:
            cur.execute(query("insert_fill_days"), {"task_id": task_id, "days": days})
            cur.execute(query("insert_fill_pairs"), {
                "task_id": task_id, "days": [day for day, _ in ordered_pairs],
                "datasets": [ds for _, ds in ordered_pairs]})
        return self._start(request, f"补全任务已启动，将补全 {len(days)} 天中的 {len(pairs)} 项数据",
                           created_by, days, insert_days,
                           {"days": len(days), "pairs": len(pairs), "kind": "fill",
                            "datasets": datasets}, kind="fill")

    def _insert_job(self, cur: Any, request: BatchRequest, message: str,
                    created_by: str | None, kind: str = "sync") -> str:
        # The seed's id: start_end_epochseconds. Two jobs for one range within a
        # second are possible (a quick cancel), so step the second on a clash.
        stamp = int(self._clock())
        for offset in range(60):
            task_id = f"{request.start_date}_{request.end_date}_{stamp + offset}"
            cur.execute(query("insert_job"), {
                "task_id": task_id, "start_date": request.start_date,
                "end_date": request.end_date, "force": request.force, "message": message,
                "created_by": created_by, "datasets": list(request.datasets), "kind": kind})
            if cur.fetchone():
                return task_id
        raise RuntimeError("no free task id")

    def _enqueue(self, task_id: str, days: list[date]) -> None:
        try:
            sent = self._queue.send_days(task_id, days)
        except QueueError as exc:
            # A job whose days never reach the queue would block every other job:
            # cancel it, so the caller can simply try again.
            log.error("enqueue failed for %s: %s", task_id, exc)
            self.cancel(task_id, reason="queue_unavailable")
            raise ServiceUnavailable.queue(exc) from exc
        with self._db.transaction() as cur:
            cur.execute(query("mark_days_enqueued"), {"task_id": task_id, "days": sent})

    def progress(self, task_id: str) -> Progress:
        with self._db.transaction() as cur:
            cur.execute(query("job_progress"), {"task_id": task_id})
            row = cur.fetchone()
        if row is None:
            raise NotFound.task(task_id)
        return progress_from_row(row)

    def cancel(self, task_id: str, reason: str = "cancelled",
               cancelled_by: str | None = None) -> Progress:
        """Stop a running or paused job: days not started are skipped, days running may finish."""
        with self._db.transaction() as cur:
            # Days first, then the job: the same lock order as the workers use.
            cur.execute(query("skip_pending_days"), {"task_id": task_id, "reason": reason})
            cur.execute(query("cancel_job"), {
                "task_id": task_id, "message": CANCEL_MESSAGES.get(reason, f"批量同步已取消: {reason}"),
                "cancelled_by": cancelled_by})
            if cur.fetchone() is None:
                raise self._not_active(cur, task_id, "cancel")
            record_event(cur, task_id, "cancelled", cancelled_by,
                         None if reason == "cancelled" else {"reason": reason})
            record_ending(cur, task_id)  # its notices commit with the cancel, or not at all
        return self.progress(task_id)

    def pause(self, task_id: str, paused_by: str | None = None) -> Progress:
        """Start no new day of a running job until it is resumed.

        Days a worker has already claimed finish (or roll back and wait for the resume);
        deliveries of the others are consumed without a claim (chalicelib.worker), and the
        resume sends them again. Pausing a paused job changes nothing.
        """
        with self._db.transaction() as cur:
            # Days first, then the job (the workers' lock order). Locking the days a delivery
            # could claim waits for claims under way; once this commits, a claim sees the job
            # paused. Days being worked on hold a live lease and are not waited for.
            cur.execute(query("lock_claimable_days"), {"task_id": task_id})
            cur.execute(query("pause_job"), {"task_id": task_id})
            if cur.fetchone() is not None:
                record_event(cur, task_id, "paused", paused_by)
            elif self._status(cur, task_id) != "paused":
                raise self._not_active(cur, task_id, "pause")
        return self.progress(task_id)

    def resume(self, task_id: str, resumed_by: str | None = None) -> Progress:
        """Let a paused job go on where it stopped: its open days are sent again.

        Days a live lease holds are not: their worker still settles or releases them, and
        a released day's message comes back by itself. A day whose message is still in the
        queue gets a second one, which finds it claimed or settled and changes nothing.
        Resuming a running job changes nothing.
        """
        with self._db.transaction() as cur:
            cur.execute(query("resume_job"), {"task_id": task_id})
            if cur.fetchone() is None:
                if self._status(cur, task_id) != "running":
                    raise self._not_active(cur, task_id, "resume")
                resumed = None
            else:
                record_event(cur, task_id, "resumed", resumed_by)
                cur.execute(query("days_to_resend"), {"task_id": task_id})
                resumed = [row["day"] for row in cur.fetchall()]
        if resumed:
            self._send_or_pause(task_id, resumed, query("mark_days_resent"))
        return self.progress(task_id)

    def retry(self, task_id: str, retried_by: str | None = None) -> RetriedJob:
        """Re-open an ended job with only its failed days pending, with fresh attempts.

        Under the job-creation lock and its rules: one active job, and the caller's write
        limits count a retry as a job start. Skipped days stay skipped; each re-opened day
        keeps its earlier error in `past_errors`, and the job's events keep its history.
        """
        try:
            with self._db.transaction() as cur:
                cur.execute(query("lock_job_creation"), {"lock_key": JOB_CREATION_LOCK_KEY})
                cur.execute(query("get_job"), {"task_id": task_id})
                job = cur.fetchone()
                if job is None:
                    raise NotFound.task(task_id)
                if job["status"] not in ENDED:
                    raise Conflict.not_ended(task_id, job["status"])
                self._refuse_if_active(cur)
                cur.execute(query("reopen_failed_days"), {"task_id": task_id})
                days = sorted(row["day"] for row in cur.fetchall())
                if not days:
                    raise Conflict.nothing_to_retry(task_id, job["status"])
                self._limits.check(cur, retried_by, job["force"])
                message = f"批量同步任务已重新启动，将重试 {len(days)} 天失败的数据"
                cur.execute(query("reopen_job"), {"task_id": task_id, "message": message})
                retries = cur.fetchone()["retries"]
                record_event(cur, task_id, "retried", retried_by,
                             {"days": len(days), "was": job["status"]})
        except psycopg2.errors.UniqueViolation:
            self._conflict_after_race()
        self._send_or_pause(task_id, days, query("mark_days_enqueued"))
        return RetriedJob(task_id=task_id, retry_days=len(days), retries=retries, message=message)

    def _send_or_pause(self, task_id: str, days: list[date], mark_sent: str) -> None:
        """Send a resumed or retried job's days; if the queue refuses, the job waits paused.

        Cancelling it (what a new job's failed enqueue does) would turn failed days into
        skipped ones; paused, it keeps them and the slot, and a resume sends them all.
        """
        try:
            sent = self._queue.send_days(task_id, days)
        except QueueError as exc:
            log.error("sending the days of %s failed: %s; pausing it", task_id, exc)
            with self._db.transaction() as cur:
                cur.execute(query("lock_claimable_days"), {"task_id": task_id})
                cur.execute(query("pause_job"), {"task_id": task_id})
                if cur.fetchone() is not None:
                    record_event(cur, task_id, "paused", None, {"reason": "queue_unavailable"})
            raise ServiceUnavailable.queue_paused(exc) from exc
        with self._db.transaction() as cur:
            cur.execute(mark_sent, {"task_id": task_id, "days": sent})

    def _status(self, cur: Any, task_id: str) -> str:
        cur.execute(query("get_job"), {"task_id": task_id})
        job = cur.fetchone()
        if job is None:
            raise NotFound.task(task_id)
        return job["status"]

    def _not_active(self, cur: Any, task_id: str, action: str) -> Conflict:
        return Conflict.not_running(task_id, self._status(cur, task_id), action)

    def days(self, task_id: str) -> list[dict[str, Any]]:
        """Every day of the job, each with its datasets' own rows (`datasets`)."""
        with self._db.transaction() as cur:
            cur.execute(query("get_job"), {"task_id": task_id})
            if cur.fetchone() is None:
                raise NotFound.task(task_id)
            cur.execute(query("job_days"), {"task_id": task_id})
            rows = cur.fetchall()
            cur.execute(query("job_day_datasets"), {"task_id": task_id})
            per_day: dict[date, list[dict[str, Any]]] = {}
            for item in cur.fetchall():
                item = dict(item)
                per_day.setdefault(item.pop("day"), []).append(item)
        return [{**_jsonable(row), "datasets": per_day.get(row["day"], [])} for row in rows]

    def events(self, task_id: str) -> list[dict[str, Any]]:
        """The job's history: created, paused, resumed, cancelled, retried, completed."""
        with self._db.transaction() as cur:
            self._status(cur, task_id)
            cur.execute(query("job_events"), {"task_id": task_id})
            rows = cur.fetchall()
        return [_jsonable(row) for row in rows]

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._db.transaction() as cur:
            cur.execute(query("recent_jobs"), {"limit": limit})
            rows = cur.fetchall()
        return [_jsonable(row) for row in rows]
