"""What follows, after commit, when a job's days or status changed: its progress is pushed
to the connections following it, and its due completion notices are sent.

Called by app.py's handlers once their transactions committed (a day settled, a job
cancelled, the sweeper settled or failed days). Nothing here may fail the change that
happened: errors are logged and left to the next push, or to the sweeper's next round.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from chalicelib.live import LiveProgress
from chalicelib.notices import DeliveryReport, NoticeSender
from chalicelib.queue import MalformedMessage, parse_day_message

log = logging.getLogger(__name__)

# A day's delivery outcomes that change its job's progress (chalicelib.worker.DayResult).
SETTLED = ("success", "skipped", "failed")


def task_of_message(body: Any) -> str | None:
    """The task id of a day message, None for a body that is not one."""
    try:
        return parse_day_message(body).task_id
    except MalformedMessage:
        return None


class JobEvents:
    def __init__(self, live: LiveProgress, notices: NoticeSender, inline_budget_s: float = 10.0):
        self._live = live
        self._notices = notices
        self._inline_budget_s = inline_budget_s

    def changed(self, task_ids: Iterable[str | None]) -> None:
        for task_id in dict.fromkeys(t for t in task_ids if t):
            try:
                self._live.publish(task_id)
            except Exception:  # noqa: BLE001 - the page falls back to polling
                log.exception("pushing the progress of %s failed", task_id)
            try:
                # Sends only if the job just ended and its notices are due: one cheap query otherwise.
                self._notices.deliver_due(task_id=task_id, budget_s=self._inline_budget_s)
            except Exception:  # noqa: BLE001 - the sweeper sends what is left
                log.exception("sending the notices of %s failed; the sweeper retries", task_id)

    def sweep(self, budget_s: float = 30.0) -> DeliveryReport:
        """The sweeper's share: every due notice, abandoned ones failed, stale tickets and
        connections dropped."""
        report = DeliveryReport()
        try:
            self._notices.fail_abandoned()
            report = self._notices.deliver_due(budget_s=budget_s)
        except Exception:  # noqa: BLE001 - the next sweep tries again
            log.exception("sending due notices failed")
        try:
            self._live.prune()
        except Exception:  # noqa: BLE001
            log.exception("pruning live tickets and connections failed")
        if report.sent or report.retrying or report.failed:
            log.info("notices: sent %s, retrying %s, failed %s", len(report.sent),
                     len(report.retrying), len(report.failed))
        return report
