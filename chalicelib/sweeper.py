"""The scheduled sweeper: no day, and so no job, stays open forever.

A day can go quiet in four ways: its message was never sent (SQS was down after
the job committed, or the API died in between), its message was lost (a purge, a
crash of a local queue) or dead-lettered, its worker died and SQS has not
redelivered yet, or its job was cancelled while a worker had it. The sweeper:

- settles open days of jobs that are no longer running (a cancelled job's
  stragglers) once no live lease holds them: skipped, reason `cancelled`;
- fails days that went quiet after using up their attempts or re-sends;
- re-sends days never sent, or quiet for longer than `stale_after_s`;
- re-sends the open days of a running job that has been quiet for `lost_after_s`
  while the queue holds no message at all (none visible, in flight or delayed):
  their messages are gone, and waiting for `stale_after_s` would block new jobs;
- deletes jobs that ended more than `retention_days` ago, a bounded batch per sweep.

No day a live lease holds is touched: its worker is still within its time.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

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
    # A running job that nothing has happened to for this long, with an empty queue,
    # has lost its messages. Long enough for SQS's approximate counts to catch up.
    lost_after_s: float = 120.0
    max_attempts: int = 5
    max_enqueues: int = 5
    batch_limit: int = 1000
    retention_days: int = 180  # 0: ended jobs are kept forever
    prune_batch: int = 100  # jobs deleted per sweep, with their days


@dataclass
class SweepReport:
    settled: list[tuple[str, date]] = field(default_factory=list)  # ended jobs' stragglers
    failed: list[tuple[str, date]] = field(default_factory=list)
    requeued: list[tuple[str, date]] = field(default_factory=list)  # never sent, or stale
    lost: list[tuple[str, date]] = field(default_factory=list)  # re-sent: their messages were gone
    pruned: list[str] = field(default_factory=list)
    send_errors: int = 0


class Sweeper:
    def __init__(self, db: Database, queue: DayQueue, policy: SweepPolicy):
        self._db = db
        self._queue = queue
        self._policy = policy

    def sweep(self) -> SweepReport:
        report = SweepReport()
        report.settled = self._settle_ended_jobs_days()
        report.failed = self._fail_exhausted()
        for task_id, days in self._stuck_days().items():
            self._resend(task_id, days, report.requeued, report)
        for task_id, days in self._lost_days().items():
            self._resend(task_id, days, report.lost, report)
        report.pruned = self._prune()
        if report.settled or report.failed or report.requeued or report.lost or report.pruned:
            log.info("sweep: settled %s days of ended jobs, failed %s, re-sent %s stale and %s lost; "
                     "pruned %s old jobs", len(report.settled), len(report.failed),
                     len(report.requeued), len(report.lost), len(report.pruned))
        return report

    def _resend(self, task_id: str, days: list[date], sent: list[tuple[str, date]],
                report: SweepReport) -> None:
        try:
            self._queue.send_days(task_id, days)
        except QueueError as exc:
            # Nothing changes: the next sweep tries again.
            log.warning("sweeper could not re-send %s days of %s: %s", len(days), task_id, exc)
            report.send_errors += 1
            return
        with self._db.transaction() as cur:
            cur.execute(query("requeue_days"), {"task_id": task_id, "days": days})
        sent.extend((task_id, d) for d in days)

    def _settle_ended_jobs_days(self) -> list[tuple[str, date]]:
        with self._db.transaction() as cur:
            cur.execute(query("settle_ended_days"))
            return _pairs(cur.fetchall())

    def _fail_exhausted(self) -> list[tuple[str, date]]:
        p = self._policy
        with self._db.transaction() as cur:
            cur.execute(query("fail_stuck_days"), {
                "reason": "stuck: no worker finished this day in time after all its attempts",
                "stale_after_s": p.stale_after_s, "max_attempts": p.max_attempts,
                "max_enqueues": p.max_enqueues})
            failed = _pairs(cur.fetchall())
            for task_id in sorted({task_id for task_id, _ in failed}):
                complete_job_if_done(cur, task_id)
        return failed

    def _stuck_days(self) -> dict[str, list[date]]:
        p = self._policy
        with self._db.transaction() as cur:
            cur.execute(query("stuck_days"), {
                "stale_after_s": p.stale_after_s, "unsent_after_s": p.unsent_after_s,
                "limit": p.batch_limit})
            return _by_task(cur.fetchall())

    def _lost_days(self) -> dict[str, list[date]]:
        with self._db.transaction() as cur:
            cur.execute(query("quiet_days"), {"quiet_s": self._policy.lost_after_s,
                                              "limit": self._policy.batch_limit})
            rows = cur.fetchall()
        if not rows:
            return {}
        try:
            counts = self._queue.counts()
        except QueueError as exc:
            log.warning("sweeper could not read the queue's counts: %s", exc)
            return {}
        if any(counts.values()):
            return {}  # their messages are still somewhere in the queue: only late
        quiet = _by_task(rows)
        for task_id, days in quiet.items():
            log.warning("sweep: job %s has been quiet for %s s with %s open days and an empty "
                        "queue: their messages are lost; sending them again",
                        task_id, int(self._policy.lost_after_s), len(days))
        return quiet

    def _prune(self) -> list[str]:
        p = self._policy
        if p.retention_days <= 0:
            return []
        with self._db.transaction() as cur:
            cur.execute(query("prune_ended_jobs"), {"retention_days": p.retention_days,
                                                    "limit": p.prune_batch})
            return [row["task_id"] for row in cur.fetchall()]


def _pairs(rows: list[dict[str, Any]]) -> list[tuple[str, date]]:
    return [(row["task_id"], row["day"]) for row in rows]


def _by_task(rows: list[dict[str, Any]]) -> dict[str, list[date]]:
    by_task: dict[str, list[date]] = defaultdict(list)
    for row in rows:
        by_task[row["task_id"]].append(row["day"])
    return dict(by_task)
