"""A job's progress, as the progress endpoint answers it (and as pushes carry it).

The seed's fields (`status`, `total`, `current`, `success`, `failed`, `skipped`,
`current_date`, `message`) come first, unchanged; the rest explain them: rows, times,
the time left (`eta_s`) and why days were skipped (`skipped_by_reason`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

ENDED = ("completed", "cancelled")
# Always in `skipped_by_reason` (0 when none), so a client can rely on them; other
# reasons (`not_published_yet`, `queue_unavailable`, ...) appear when a day was skipped for them.
SKIP_REASONS = ("non_trading_day", "already_synced", "cancelled")


@dataclass(frozen=True)
class Progress:
    task_id: str
    status: str  # running, paused, completed or cancelled
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
    # Seconds of work left at the rate this run of the job has shown, paused time not
    # counted; None until a day has settled (unknown), 0 once the job has ended.
    eta_s: float | None = None
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    paused_s: float = 0.0  # every pause so far, the current one included
    paused_at: str | None = None  # when the current pause began
    retries: int = 0  # how many times a retry re-opened the job
    # When the job's status last changed (created, paused, resumed, re-opened, ended): of two
    # pictures of the job, polled and pushed, the one with the later change is the newer.
    updated_at: str | None = None
    # Per dataset of the job, in the job's order: its (day, dataset) rows counted by status,
    # and the rows written ({} for a job from before datasets). `kind`: sync, or fill (an
    # audit's faulty pairs).
    datasets: dict[str, dict[str, int]] = field(default_factory=dict)
    kind: str = "sync"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def progress_from_row(row: dict[str, Any]) -> Progress:
    """Turn the aggregated day rows (query `job_progress`) into the progress fields."""
    total, success, failed, skipped = row["total"], row["success"], row["failed"], row["skipped"]
    current = success + failed + skipped
    current_day = row["running_day"] or row["next_day"] or row["last_done_day"]
    current_date = iso(current_day)
    status = row["status"]
    if status == "running":
        if current == 0 and not row["running"]:
            message = f"同步任务已启动，正在同步 {total} 天的数据..."
        else:
            message = f"正在同步 {current_date}..."
    elif status == "paused":
        message = f"同步任务已暂停: 已处理 {current}/{total} 天"
    else:
        message = row["message"] or ""
    now = row["observed_at"]
    end = row["finished_at"] or now
    pausing_s = (now - row["paused_at"]).total_seconds() if row["paused_at"] else 0.0
    return Progress(
        task_id=row["task_id"], status=status, total=total, current=current,
        success=success, failed=failed, skipped=skipped, current_date=current_date,
        message=message, percent=round(100.0 * current / total, 1) if total else 100.0,
        rows=int(row["rows"]), start_date=iso(row["start_date"]), end_date=iso(row["end_date"]),
        force=row["force"], created_at=iso(row["created_at"]),
        finished_at=iso(row["finished_at"]),
        elapsed_s=round((end - row["created_at"]).total_seconds(), 1),
        eta_s=eta_s(row, total - current, now, pausing_s),
        skipped_by_reason=skips_by_reason(row["skipped_by_reason"]),
        paused_s=round(float(row["paused_s"]) + pausing_s, 1),
        paused_at=iso(row["paused_at"]),
        retries=int(row["retries"]),
        updated_at=iso(row.get("updated_at")),
        datasets=dataset_counts(row.get("datasets") or [], row.get("dataset_counts")),
        kind=row.get("kind") or "sync",
    )


def dataset_counts(names: list[str], counts: dict[str, Any] | None) -> dict[str, dict[str, int]]:
    counts = counts or {}
    keys = ("success", "failed", "skipped", "pending", "rows")
    return {name: {key: int(counts[name].get(key, 0)) for key in keys}
            for name in [*names, *sorted(set(counts) - set(names))] if name in counts}


def eta_s(row: dict[str, Any], left: int, now: datetime, pausing_s: float) -> float | None:
    """Days left times this run's seconds per settled day, the run's paused time left out.

    A run is the job's life since it was created, or since a retry re-opened it: a retry's
    days are the hard ones, so the first run's rate would say little about them.
    """
    if row["status"] in ENDED:
        return 0.0
    settled = row["run_settled"]
    active_s = (now - row["run_started_at"]).total_seconds() - float(row["run_paused_s"]) - pausing_s
    if not settled or active_s <= 0:
        return None
    return round(left * active_s / settled, 1)


def skips_by_reason(counts: dict[str, Any] | None) -> dict[str, int]:
    counts = {str(k): int(v) for k, v in (counts or {}).items()}
    known = {reason: counts.pop(reason, 0) for reason in SKIP_REASONS}
    return {**known, **dict(sorted(counts.items()))}
