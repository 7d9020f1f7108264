"""The scheduled sweeper: no day, and so no job, stays open forever.

A day can go quiet in three ways: its message was never sent (SQS was down
after the job committed, or the API died in between), its message was lost
or dead-lettered, or its worker died and SQS has not redelivered yet. The
sweeper re-sends such days, and fails those that have used up their attempts
or re-sends, completing their job if nothing else is open.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from chalicelib.db import Database, query
from chalicelib.jobs import complete_job_if_done
from chalicelib.queue import DayQueue, QueueError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepPolicy:
    # Longer than SQS's visibility timeout plus the longest retry backoff, so a
    # day merely waiting for its redelivery is not taken for lost.
    stale_after_s: float = 900.0
    # A job's days normally reach the queue within a second of its commit.
    unsent_after_s: float = 60.0
    max_attempts: int = 5
    max_enqueues: int = 5
    batch_limit: int = 1000


@dataclass
class SweepReport:
    failed: list[tuple[str, date]] = field(default_factory=list)
    requeued: list[tuple[str, date]] = field(default_factory=list)
    send_errors: int = 0


class Sweeper:
    def __init__(self, db: Database, queue: DayQueue, policy: SweepPolicy):
        self._db = db
        self._queue = queue
        self._policy = policy

    def sweep(self) -> SweepReport:
        report = SweepReport()
        report.failed = self._fail_exhausted()
        for task_id, days in self._stuck_days().items():
            try:
                self._queue.send_days(task_id, days)
            except QueueError as exc:
                # Nothing changes: the next sweep tries again.
                log.warning("sweeper could not re-send %s days of %s: %s", len(days), task_id, exc)
                report.send_errors += 1
                continue
            with self._db.transaction() as cur:
                cur.execute(query("requeue_days"), {"task_id": task_id, "days": days})
            report.requeued.extend((task_id, d) for d in days)
        if report.failed or report.requeued:
            log.info("sweep: failed %s days, re-sent %s", len(report.failed), len(report.requeued))
        return report

    def _fail_exhausted(self) -> list[tuple[str, date]]:
        p = self._policy
        with self._db.transaction() as cur:
            cur.execute(query("fail_stuck_days"), {
                "reason": "stuck: no worker finished this day in time after all its attempts",
                "stale_after_s": p.stale_after_s, "max_attempts": p.max_attempts,
                "max_enqueues": p.max_enqueues})
            failed = [(row["task_id"], row["day"]) for row in cur.fetchall()]
            for task_id in sorted({task_id for task_id, _ in failed}):
                complete_job_if_done(cur, task_id)
        return failed

    def _stuck_days(self) -> dict[str, list[date]]:
        p = self._policy
        with self._db.transaction() as cur:
            cur.execute(query("stuck_days"), {
                "stale_after_s": p.stale_after_s, "unsent_after_s": p.unsent_after_s,
                "limit": p.batch_limit})
            rows = cur.fetchall()
        by_task: dict[str, list[date]] = defaultdict(list)
        for row in rows:
            by_task[row["task_id"]].append(row["day"])
        return dict(by_task)
