"""Retry: an ended job re-opened with only its failed days pending, fresh attempts, its
history kept; the one-job rule and the token's limits as for a start."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from chalice.test import Client

from chalicelib.errors import ServiceUnavailable
from chalicelib.jobs import JobService
from chalicelib.queue import DayQueue
from devstack.services import sqs_client
from devstack.tokens import LOCAL_TOKEN_NAME
from tests.conftest import TokenHttp, fetch_all, scalar

HOLIDAY_RANGE = {"start_date": "2025-09-29", "end_date": "2025-10-10"}  # 4 trading days of 12
BATCH = "/api/v1/sync-status/sync/batch"


def start(api, body=HOLIDAY_RANGE) -> str:
    response = api.start(body)
    assert response.status_code == 200, response.json_body
    return response.json_body["data"]["task_id"]


def day_rows(db, task_id):
    return {r["day"]: r for r in fetch_all(
        db, "SELECT day::text, status, skip_reason, attempts, rows_written, error, past_errors, "
            "enqueue_count, finished_at FROM sync_job_days WHERE task_id = %(t)s ORDER BY day",
        {"t": task_id})}


def ended_with_a_failed_day(api, workers, stack, trade_date="20251009") -> str:
    stack.tushare.add_fault("http_500", api="daily", trade_date=trade_date, times=None)
    task_id = start(api)
    final = workers.run_until_settled(task_id)
    assert (final["status"], final["success"], final["failed"], final["skipped"]) == ("completed", 3, 1, 8)
    stack.tushare.clear_faults()
    return task_id


def test_retry_reopens_only_the_failed_days_with_fresh_attempts_and_keeps_the_history(
        api, db, workers, stack):
    task_id = ended_with_a_failed_day(api, workers, stack)
    before = day_rows(db, task_id)
    failed = before["2025-10-09"]
    assert failed["attempts"] == 3 and "after 3 attempts" in failed["error"]

    answer = api.retry(task_id)
    assert answer.status_code == 200, answer.json_body
    assert answer.json_body["data"] == {"task_id": task_id, "retry_days": 1, "retries": 1,
                                        "message": "批量同步任务已重新启动，将重试 1 天失败的数据"}
    reopened = day_rows(db, task_id)
    day = reopened["2025-10-09"]
    assert (day["status"], day["attempts"], day["error"], day["finished_at"]) == ("pending", 0, None, None)
    assert day["past_errors"] == [failed["error"]]  # what it failed with before
    assert day["enqueue_count"] == 1
    # Every other day, skipped ones included, exactly as it was.
    assert {d: r for d, r in reopened.items() if d != "2025-10-09"} == \
        {d: r for d, r in before.items() if d != "2025-10-09"}
    progress = api.progress(task_id).json_body["data"]
    assert (progress["status"], progress["current"], progress["failed"], progress["retries"]) == ("running", 11, 0, 1)
    assert progress["eta_s"] is None  # nothing settled in this run yet: unknown

    final = workers.run_until_settled(task_id)
    assert (final["status"], final["success"], final["failed"], final["skipped"]) == ("completed", 4, 0, 8)
    assert final["message"] == "批量同步完成: 成功4, 失败0, 跳过8"
    day = day_rows(db, task_id)["2025-10-09"]
    assert (day["status"], day["attempts"], day["past_errors"]) == ("success", 1, [failed["error"]])
    assert scalar(db, "SELECT rows FROM synced_dates WHERE dataset = 'daily' AND trade_date = '2025-10-09'") == day["rows_written"] > 4000
    events = api.events(task_id).json_body["data"]
    assert [(e["kind"], e["actor"]) for e in events] == [
        ("created", LOCAL_TOKEN_NAME), ("completed", None), ("retried", LOCAL_TOKEN_NAME), ("completed", None)]
    assert events[2]["detail"] == {"days": 1, "was": "completed"}
    assert scalar(db, "SELECT endings FROM sync_jobs") == 2  # each ending has its own notices
    listed = api.jobs().json_body["data"][0]
    assert listed["retries"] == 1 and [e["kind"] for e in listed["events"]] == [e["kind"] for e in events]
    # The API's list of days says so too.
    shown = {d["day"]: d for d in api.days(task_id).json_body["data"]}
    assert shown["2025-10-09"]["past_errors"] == [failed["error"]]
    assert shown["2025-10-01"]["past_errors"] == []


def test_retry_of_a_cancelled_job_reopens_its_failed_days_not_its_cancelled_ones(
        api, db, workers, stack, app_module):
    stack.tushare.add_fault("http_500", api="daily", trade_date="20250929", times=None)
    task_id = start(api)
    # Deliver until 09-29 has failed, then cancel: the rest are skipped as cancelled.
    while day_rows(db, task_id)["2025-09-29"]["status"] != "failed":
        assert workers.handle(1) == 1
    assert api.cancel(task_id).status_code == 200
    workers.drain()
    stack.tushare.clear_faults()
    before = day_rows(db, task_id)
    cancelled = {d for d, r in before.items() if r["skip_reason"] == "cancelled"}
    assert cancelled
    answer = api.retry(task_id)
    assert answer.status_code == 200 and answer.json_body["data"]["retry_days"] == 1
    final = workers.run_until_settled(task_id)
    assert final["status"] == "completed" and final["failed"] == 0
    after = day_rows(db, task_id)
    assert after["2025-09-29"]["status"] == "success"
    assert {d for d, r in after.items() if r["skip_reason"] == "cancelled"} == cancelled
    assert [e["kind"] for e in api.events(task_id).json_body["data"]] == [
        "created", "cancelled", "retried", "completed"]
    listed = api.jobs().json_body["data"][0]
    assert listed["cancelled_by"] is None and listed["status"] == "completed"


def test_retry_is_refused_clearly_and_writes_nothing(api, db, workers, stack):
    running = start(api)
    refused = api.retry(running)
    assert refused.status_code == 409
    assert refused.json_body["code"] == "job_not_ended"
    assert refused.json_body["message"] == f"任务尚未结束（running），只能重试已结束的任务: {running}"
    assert api.pause(running).status_code == 200
    assert api.retry(running, query="?lang=en").json_body["message"] == \
        f"Task {running} has not ended (paused); only an ended job can be retried"
    assert api.resume(running).status_code == 200
    workers.run_until_settled(running)  # completes: nothing failed
    events = scalar(db, "SELECT count(*) FROM sync_job_events")
    nothing = api.retry(running)
    assert nothing.status_code == 409
    assert nothing.json_body == {"status": "error", "code": "no_failed_days",
                                 "message": f"任务没有失败的日期，无需重试: {running}",
                                 "data": {"task_id": running, "status": "completed"}}
    assert api.retry(running, query="?lang=en").json_body["message"] == f"Task {running} has no failed days to retry"
    assert scalar(db, "SELECT count(*) FROM sync_job_events") == events
    assert scalar(db, "SELECT status FROM sync_jobs") == "completed"
    assert api.retry("2025-10-01_2025-10-09_1").status_code == 404


def test_retry_keeps_the_one_job_rule(api, db, workers, stack):
    task_id = ended_with_a_failed_day(api, workers, stack)
    other = start(api, {"start_date": "2025-09-01", "end_date": "2025-09-02"})
    refused = api.retry(task_id)
    assert refused.status_code == 409 and refused.json_body["data"] == {"task_id": other, "status": "running"}
    assert refused.json_body["message"] == "已有同步任务正在运行，请等待当前任务完成后再试"
    assert api.pause(other).status_code == 200
    assert api.retry(task_id).json_body["code"] == "job_paused"
    assert scalar(db, "SELECT status FROM sync_job_days WHERE task_id = %(t)s AND day = '2025-10-09'",
                  {"t": task_id}) == "failed"
    assert api.cancel(other).status_code == 200
    assert api.retry(task_id).status_code == 200


def test_concurrent_retries_and_starts_make_exactly_one_active_job(app_module, api, db, workers, stack):
    task_id = ended_with_a_failed_day(api, workers, stack)
    jobs = app_module.get_jobs()
    from chalicelib.errors import Conflict
    from chalicelib.validation import BatchRequest

    def race(i: int) -> str:
        try:
            if i % 2:
                jobs.retry(task_id, "racer")
            else:
                jobs.create(BatchRequest(date(2025, 8, 1 + i), date(2025, 8, 1 + i)), "racer")
        except Conflict as refused:
            return refused.code
        return "ok"
    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(race, range(10)))
    assert outcomes.count("ok") == 1, outcomes
    assert scalar(db, "SELECT count(*) FROM sync_jobs WHERE status IN ('running', 'paused')") == 1
    assert scalar(db, "SELECT count(*) FROM sync_job_events WHERE kind = 'retried'") <= 1


def test_a_retry_counts_as_a_job_start_against_the_tokens_limit(app_module, api, db, workers, stack, configure):
    task_id = ended_with_a_failed_day(api, workers, stack)  # one start this hour
    configure(job_starts_per_hour=2)
    with Client(app_module.app) as client:
        operator = TokenHttp(client.http, stack.api_token)
        assert operator.post(f"{BATCH}/retry/{task_id}").status_code == 200  # the second
        workers.run_until_settled(task_id)
        with db.transaction() as cur:  # fail it again, so there is something to retry
            cur.execute("UPDATE sync_job_days SET status = 'failed', error = 'again' WHERE day = '2025-10-09'")
        refused = operator.post(f"{BATCH}/retry/{task_id}?lang=en")
        assert refused.status_code == 429 and refused.json_body["code"] == "rate_limited"
        assert refused.json_body["message"].startswith("Limit reached: job starts per hour (2)")
        assert scalar(db, "SELECT status FROM sync_job_days WHERE day = '2025-10-09'") == "failed"
        with db.transaction() as cur:  # an hour later
            cur.execute("UPDATE sync_job_events SET at = at - interval '61 minutes'")
            cur.execute("UPDATE sync_jobs SET created_at = created_at - interval '61 minutes'")
        assert operator.post(f"{BATCH}/retry/{task_id}").status_code == 200


def test_retry_with_the_queue_down_leaves_the_job_paused_for_a_resume(app_module, api, db, workers, stack):
    task_id = ended_with_a_failed_day(api, workers, stack)
    dead = DayQueue(sqs_client("http://127.0.0.1:9", "ap-east-1"), "http://127.0.0.1:9/000000000000/none")
    with pytest.raises(ServiceUnavailable) as raised:
        JobService(app_module.get_db(), dead).retry(task_id, "ops")
    assert raised.value.code == "queue_unavailable" and raised.value.status_code == 503
    assert "paused" in raised.value.en
    assert scalar(db, "SELECT status FROM sync_jobs") == "paused"
    day = day_rows(db, task_id)["2025-10-09"]
    assert day["status"] == "pending" and len(day["past_errors"]) == 1  # kept, not skipped
    events = api.events(task_id).json_body["data"]
    assert [e["kind"] for e in events][-2:] == ["retried", "paused"]
    assert events[-1]["actor"] is None and events[-1]["detail"] == {"reason": "queue_unavailable"}
    assert api.resume(task_id).status_code == 200
    final = workers.run_until_settled(task_id)
    assert (final["status"], final["success"], final["failed"]) == ("completed", 4, 0)
