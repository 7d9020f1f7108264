"""Batch-sync jobs: create (lock, insert, enqueue), progress, cancel, history."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Callable

import psycopg2.errors

from chalicelib.db import Database, query
from chalicelib.errors import Conflict, NotFound, ServiceUnavailable
from chalicelib.limits import WriteLimits
from chalicelib.notices import record_ending
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
class Progress:
    task_id: str
    status: str  # running, completed or cancelled
    total: int
    current: int
    success: int
    failed: int
    skipped: int
    current_date: str | None
    message: str
    percent: float
    rows: int
    start_date: str
    end_date: str
    force: bool
    created_at: str
    finished_at: str | None
    elapsed_s: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def complete_job_if_done(cur: Any, task_id: str) -> bool:
    """Mark the job completed if none of its days is open; call after settling a day.
    Returns whether this call ended the job.

    Without the job row's lock, two last days committing together would each
    still see the other open, and the job would never be completed. The ending's
    completion notices are written in the same transaction (chalicelib.notices).
    """
    cur.execute(query("lock_job"), {"task_id": task_id})
    cur.execute(query("complete_job_if_done"), {"task_id": task_id})
    if cur.fetchone() is None:
        return False
    record_ending(cur, task_id)
    return True


def iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (iso(v) if isinstance(v, (date, datetime)) else v) for k, v in row.items()}


def progress_from_row(row: dict[str, Any]) -> Progress:
    """Turn the aggregated day rows into the seed's progress fields."""
    total, success, failed, skipped = row["total"], row["success"], row["failed"], row["skipped"]
    current = success + failed + skipped
    current_day = row["running_day"] or row["next_day"] or row["last_done_day"]
    current_date = iso(current_day)
    if row["status"] == "running":
        if current == 0 and not row["running"]:
            message = f"同步任务已启动，正在同步 {total} 天的数据..."
        else:
            message = f"正在同步 {current_date}..."
    else:
        message = row["message"] or ""
    end = row["finished_at"] or row["observed_at"]
    return Progress(
        task_id=row["task_id"], status=row["status"], total=total, current=current,
        success=success, failed=failed, skipped=skipped, current_date=current_date,
        message=message, percent=round(100.0 * current / total, 1) if total else 100.0,
        rows=int(row["rows"]), start_date=iso(row["start_date"]), end_date=iso(row["end_date"]),
        force=row["force"], created_at=iso(row["created_at"]),
        finished_at=iso(row["finished_at"]),
        elapsed_s=round((end - row["created_at"]).total_seconds(), 1),
    )


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
        message = f"批量同步任务已启动，将同步 {len(days)} 天的数据"
        try:
            with self._db.transaction() as cur:
                cur.execute(query("lock_job_creation"), {"lock_key": JOB_CREATION_LOCK_KEY})
                self._limits.check(cur, created_by, request.force)
                cur.execute(query("active_job"))
                active = cur.fetchone()
                if active:
                    raise Conflict.job_running(active["task_id"])
                task_id = self._insert_job(cur, request, message, created_by)
                cur.execute(query("insert_job_days"), {"task_id": task_id,
                            "start_date": request.start_date, "end_date": request.end_date})
        except psycopg2.errors.UniqueViolation:
            # The one-active-job index caught what the lock should have: still a conflict.
            with self._db.transaction() as cur:
                cur.execute(query("active_job"))
                active = cur.fetchone()
            raise Conflict.job_running(active["task_id"] if active else "") from None
        self._enqueue(task_id, days)
        return CreatedJob(task_id=task_id, total_days=len(days), message=message)

    def _insert_job(self, cur: Any, request: BatchRequest, message: str,
                    created_by: str | None) -> str:
        # The seed's id: start_end_epochseconds. Two jobs for one range within a
        # second are possible (a quick cancel), so step the second on a clash.
        stamp = int(self._clock())
        for offset in range(60):
            task_id = f"{request.start_date}_{request.end_date}_{stamp + offset}"
            cur.execute(query("insert_job"), {
                "task_id": task_id, "start_date": request.start_date,
                "end_date": request.end_date, "force": request.force, "message": message,
                "created_by": created_by})
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
        """Stop a running job: days not started are skipped, days running may finish."""
        with self._db.transaction() as cur:
            # Days first, then the job: the same lock order as the workers use.
            cur.execute(query("skip_pending_days"), {"task_id": task_id, "reason": reason})
            cur.execute(query("cancel_job"), {
                "task_id": task_id, "message": CANCEL_MESSAGES.get(reason, f"批量同步已取消: {reason}"),
                "cancelled_by": cancelled_by})
            if cur.fetchone() is None:
                cur.execute(query("get_job"), {"task_id": task_id})
                job = cur.fetchone()
                if job is None:
                    raise NotFound.task(task_id)
                raise Conflict.not_running(task_id, job["status"])
            record_ending(cur, task_id)  # its notices commit with the cancel, or not at all
        return self.progress(task_id)

    def days(self, task_id: str) -> list[dict[str, Any]]:
        with self._db.transaction() as cur:
            cur.execute(query("get_job"), {"task_id": task_id})
            if cur.fetchone() is None:
                raise NotFound.task(task_id)
            cur.execute(query("job_days"), {"task_id": task_id})
            rows = cur.fetchall()
        return [_jsonable(row) for row in rows]

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._db.transaction() as cur:
            cur.execute(query("recent_jobs"), {"limit": limit})
            rows = cur.fetchall()
        return [_jsonable(row) for row in rows]
