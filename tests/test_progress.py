"""Progress that explains itself: the time left from the job's own rate (paused time left
out, unknown until a day settles) and why days were skipped, with every seed field kept."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from chalicelib.progress import progress_from_row

NOW = datetime(2025, 10, 10, 8, 0, 0, tzinfo=timezone.utc)
SEED_FIELDS = {"status", "total", "current", "success", "failed", "skipped", "current_date", "message"}


def row(**changes):
    """A `job_progress` row: 10 days, 4 settled in 100 s of a job created 100 s ago."""
    base = {
        "task_id": "2025-10-01_2025-10-10_1760000000", "status": "running",
        "start_date": date(2025, 10, 1), "end_date": date(2025, 10, 10), "force": False,
        "message": "批量同步任务已启动，将同步 10 天的数据", "created_at": NOW - timedelta(seconds=100),
        "finished_at": None, "observed_at": NOW, "paused_at": None, "paused_s": 0.0,
        "run_paused_s": 0.0, "retries": 0, "run_started_at": NOW - timedelta(seconds=100),
        "total": 10, "success": 2, "failed": 0, "skipped": 2, "running": 1, "rows": 10_000,
        "running_day": date(2025, 10, 5), "next_day": date(2025, 10, 6),
        "last_done_day": date(2025, 10, 4), "run_settled": 4,
        "skipped_by_reason": {"non_trading_day": 2},
    }
    return {**base, **changes}


def test_eta_is_the_days_left_at_the_runs_rate():
    progress = progress_from_row(row())
    assert progress.eta_s == 150.0  # 6 days left at 25 s a day
    assert SEED_FIELDS <= set(progress.as_json())
    assert progress.as_json()["current"] == 4 and progress.percent == 40.0


def test_eta_leaves_out_the_time_spent_paused_before_and_now():
    earlier = progress_from_row(row(run_paused_s=60.0, paused_s=60.0))
    assert earlier.eta_s == 60.0  # 40 s of work for 4 days: 10 s a day
    paused = progress_from_row(row(status="paused", run_paused_s=20.0, paused_s=20.0,
                                   paused_at=NOW - timedelta(seconds=40)))
    assert paused.eta_s == 60.0  # 100 - 20 - 40 = 40 s for 4 days
    assert paused.paused_s == 60.0 and paused.paused_at == (NOW - timedelta(seconds=40)).isoformat()
    assert paused.message == "同步任务已暂停: 已处理 4/10 天"


def test_eta_is_unknown_before_a_day_settles_and_zero_once_ended():
    assert progress_from_row(row(run_settled=0, success=0, skipped=0)).eta_s is None
    assert progress_from_row(row(status="paused", paused_at=NOW - timedelta(seconds=100))).eta_s is None
    done = progress_from_row(row(status="completed", finished_at=NOW, success=8, skipped=2,
                                 message="批量同步完成: 成功8, 失败0, 跳过2"))
    assert done.eta_s == 0.0 and done.message == "批量同步完成: 成功8, 失败0, 跳过2"


def test_eta_of_a_retried_job_counts_only_its_new_run():
    # Created an hour ago; retried 20 s ago, and one of its two re-opened days settled since.
    progress = progress_from_row(row(created_at=NOW - timedelta(hours=1), retries=1,
                                     run_started_at=NOW - timedelta(seconds=20), run_settled=1,
                                     success=8, skipped=1, failed=0))
    assert progress.current == 9 and progress.eta_s == 20.0
    assert progress.elapsed_s == 3600.0 and progress.retries == 1


def test_skips_by_reason_always_name_the_usual_reasons():
    assert progress_from_row(row()).skipped_by_reason == {
        "non_trading_day": 2, "already_synced": 0, "cancelled": 0}
    odd = progress_from_row(row(skipped_by_reason={"queue_unavailable": 3, "already_synced": 1}))
    assert odd.skipped_by_reason == {"non_trading_day": 0, "already_synced": 1, "cancelled": 0,
                                     "queue_unavailable": 3}


def test_the_progress_answer_says_why_days_were_skipped(api, db, workers):
    body = {"start_date": "2025-09-29", "end_date": "2025-10-10"}
    first = api.start(body).json_body["data"]["task_id"]
    running = api.progress(first).json_body["data"]
    assert running["eta_s"] is None and running["skipped_by_reason"] == {
        "non_trading_day": 0, "already_synced": 0, "cancelled": 0}
    assert workers.handle(4) == 4
    midway = api.progress(first).json_body["data"]
    assert midway["eta_s"] is not None and midway["eta_s"] >= 0
    final = workers.run_until_settled(first)
    assert final["skipped_by_reason"] == {"non_trading_day": 8, "already_synced": 0, "cancelled": 0}
    assert final["eta_s"] == 0.0
    again = workers.run_until_settled(api.start(body).json_body["data"]["task_id"])
    assert again["skipped_by_reason"] == {"non_trading_day": 8, "already_synced": 4, "cancelled": 0}
    assert sum(again["skipped_by_reason"].values()) == again["skipped"] == 12
    third = api.start(body).json_body["data"]["task_id"]
    cancelled = api.cancel(third).json_body["data"]
    assert cancelled["skipped_by_reason"]["cancelled"] == 12
