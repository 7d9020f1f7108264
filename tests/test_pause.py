"""Pause and resume through the API and the real worker loop: a paused job's messages are
consumed without a claim, an attempt or a fetch; it keeps the one-job slot; the sweeper
leaves it alone; resume goes on exactly where it stopped. (The races against a day in
flight are in the fault suite, tests/test_faults.py, section 16.)"""
from __future__ import annotations

import json
from datetime import date

import psycopg2
import pytest

from chalicelib.sweeper import Sweeper, SweepPolicy
from devstack.tokens import LOCAL_TOKEN_NAME
from tests.conftest import fetch_all, scalar

HOLIDAY_RANGE = {"start_date": "2025-09-29", "end_date": "2025-10-10"}  # 4 trading days of 12
TRADING = ["20250929", "20250930", "20251009", "20251010"]


def start(api, body=HOLIDAY_RANGE) -> str:
    response = api.start(body)
    assert response.status_code == 200, response.json_body
    return response.json_body["data"]["task_id"]


def day_rows(db, task_id):
    return fetch_all(db, "SELECT day::text, status, skip_reason, attempts, rows_written, error, "
                         "enqueue_count FROM sync_job_days WHERE task_id = %(t)s ORDER BY day",
                     {"t": task_id})


def daily_calls(stack) -> dict[str, int]:
    return stack.tushare.stats()["by_trade_date"].get("daily", {})


def queued(app_module) -> int:
    return sum(app_module.get_queue().counts().values())


def queued_days(stack) -> list[str]:
    """Take every message out of the day queue (hidden for a minute); their days."""
    sqs = stack.sqs_client()
    days = []
    while True:
        answer = sqs.receive_message(QueueUrl=stack.env["SQS_QUEUE_URL"], MaxNumberOfMessages=10,
                                     WaitTimeSeconds=0, VisibilityTimeout=60)
        if not answer.get("Messages"):
            return sorted(days)
        days.extend(json.loads(m["Body"])["day"] for m in answer["Messages"])


def event_kinds(api, task_id) -> list[tuple[str, str | None]]:
    return [(e["kind"], e["actor"]) for e in api.events(task_id).json_body["data"]]


def test_pause_consumes_queued_days_unclaimed_and_resume_continues_exactly_where_it_stopped(
        api, db, workers, stack, app_module):
    task_id = start(api)
    assert workers.handle(3) == 3
    before = {d["day"]: d for d in day_rows(db, task_id)}
    settled = {day for day, d in before.items() if d["status"] != "pending"}
    assert len(settled) == 3

    paused = api.pause(task_id)
    assert paused.status_code == 200
    data = paused.json_body["data"]
    assert (data["status"], data["current"], data["total"]) == ("paused", 3, 12)
    assert data["message"] == "同步任务已暂停: 已处理 3/12 天"
    calls = daily_calls(stack)

    # Every queued message of the paused job is delivered once and consumed: no claim, no
    # attempt, no fetch, nothing left to spin in the queue.
    assert workers.drain() == 9
    assert workers.loop.failed == 0
    assert queued(app_module) == 0
    assert day_rows(db, task_id) == list(before.values())
    assert daily_calls(stack) == calls
    assert api.progress(task_id).json_body["data"]["status"] == "paused"

    resumed = api.resume(task_id)
    assert resumed.status_code == 200 and resumed.json_body["data"]["status"] == "running"
    # One message per day still to do, and the sweeper's re-send count untouched.
    assert queued_days(stack) == sorted(day for day in before if day not in settled)
    stack.sqs_client().purge_queue(QueueUrl=stack.env["SQS_QUEUE_URL"])
    assert api.pause(task_id).status_code == 200 and api.resume(task_id).status_code == 200
    final = workers.run_until_settled(task_id)
    assert (final["status"], final["success"], final["failed"], final["skipped"]) == ("completed", 4, 0, 8)
    after = {d["day"]: d for d in day_rows(db, task_id)}
    assert {day: after[day] for day in settled} == {day: before[day] for day in settled}
    assert all(d["attempts"] == 1 for d in after.values())  # not one attempt spent on the pause
    assert all(d["enqueue_count"] == 1 for d in after.values())
    assert daily_calls(stack) == {day: 1 for day in TRADING}  # each trading day fetched once
    assert event_kinds(api, task_id) == [
        ("created", LOCAL_TOKEN_NAME), ("paused", LOCAL_TOKEN_NAME), ("resumed", LOCAL_TOKEN_NAME),
        ("paused", LOCAL_TOKEN_NAME), ("resumed", LOCAL_TOKEN_NAME), ("completed", None)]
    progress = api.progress(task_id).json_body["data"]
    assert progress["paused_s"] > 0 and progress["paused_at"] is None


def test_a_paused_job_holds_the_slot_and_the_409_says_it_is_paused(api, db):
    task_id = start(api)
    assert api.pause(task_id).status_code == 200
    other = {"start_date": "2025-09-01", "end_date": "2025-09-05"}
    refused = api.start(other)
    assert refused.status_code == 409
    assert refused.json_body == {"status": "error", "code": "job_paused",
                                 "message": "已有同步任务处于暂停状态，请先恢复或取消该任务后再试",
                                 "data": {"task_id": task_id, "status": "paused"}}
    english = api.start(other, query="?lang=en").json_body
    assert english["message"] == "A sync job is paused; resume or cancel it, then try again"
    # Running again: the seed's words, exactly.
    assert api.resume(task_id).status_code == 200
    running = api.start(other).json_body
    assert running["code"] == "job_running"
    assert running["message"] == "已有同步任务正在运行，请等待当前任务完成后再试"
    assert running["data"] == {"task_id": task_id, "status": "running"}
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 1


def test_the_database_itself_refuses_a_second_active_job_beside_a_paused_one(db):
    with db.transaction() as cur:
        cur.execute("INSERT INTO sync_jobs (task_id, start_date, end_date, status) "
                    "VALUES ('a', '2025-01-01', '2025-01-02', 'paused')")
    with pytest.raises(psycopg2.errors.UniqueViolation):
        with db.transaction() as cur:
            cur.execute("INSERT INTO sync_jobs (task_id, start_date, end_date) "
                        "VALUES ('b', '2025-01-01', '2025-01-02')")
    with pytest.raises(psycopg2.errors.CheckViolation):
        with db.transaction() as cur:
            cur.execute("UPDATE sync_jobs SET status = 'sleeping'")


def test_pause_and_resume_repeat_harmlessly_and_are_refused_once_the_job_ended(api, db):
    task_id = start(api)
    for _ in range(2):
        assert api.pause(task_id).json_body["data"]["status"] == "paused"
    for _ in range(2):
        assert api.resume(task_id).json_body["data"]["status"] == "running"
    assert [kind for kind, _ in event_kinds(api, task_id)] == ["created", "paused", "resumed"]
    assert api.cancel(task_id).status_code == 200
    for action, zh, en in (("pause", "无法暂停", "cannot be paused"),
                           ("resume", "无法恢复", "cannot be resumed")):
        refused = api.control(action, task_id)
        assert refused.status_code == 409
        body = refused.json_body
        assert body["code"] == "job_not_running" and body["data"] == {"task_id": task_id, "status": "cancelled"}
        assert body["message"] == f"任务已结束（cancelled），{zh}: {task_id}"
        assert en in api.control(action, task_id, query="?lang=en").json_body["message"]
        assert api.control(action, "2025-10-01_2025-10-09_1").status_code == 404
        assert api.control(action, "not-a-task").status_code == 404


def test_cancel_works_on_a_paused_job_and_frees_the_slot(api, db, workers):
    task_id = start(api)
    assert api.pause(task_id).status_code == 200
    cancelled = api.cancel(task_id)
    assert cancelled.status_code == 200
    data = cancelled.json_body["data"]
    assert (data["status"], data["skipped"], data["current"]) == ("cancelled", 12, 12)
    assert data["skipped_by_reason"]["cancelled"] == 12
    assert data["paused_at"] is None and data["paused_s"] >= 0
    assert workers.drain() == 12  # the paused job's messages: consumed, settled already
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 0
    assert [kind for kind, _ in event_kinds(api, task_id)] == ["created", "paused", "cancelled"]
    assert api.start(HOLIDAY_RANGE).status_code == 200


def test_the_sweeper_never_takes_a_paused_jobs_days_for_stuck_or_lost(api, db, app_module, stack):
    task_id = start(api)
    with db.transaction() as cur:  # long quiet, out of attempts, a dead worker's lapsed lease
        cur.execute("UPDATE sync_job_days SET enqueued_at = now() - interval '2 hours', attempts = 5, "
                    "enqueue_count = 5, started_at = now() - interval '2 hours' WHERE task_id = %(t)s",
                    {"t": task_id})
        cur.execute("UPDATE sync_job_days SET status = 'running', lease_token = %(l)s, "
                    "lease_until = now() - interval '1 minute' WHERE day = '2025-10-09'", {"l": "b" * 32})
        cur.execute("UPDATE sync_jobs SET created_at = now() - interval '3 hours'")
    assert api.pause(task_id).status_code == 200
    stack.sqs_client().purge_queue(QueueUrl=stack.env["SQS_QUEUE_URL"])  # and the queue is empty
    before = day_rows(db, task_id)
    sweeper = Sweeper(app_module.get_db(), app_module.get_queue(), SweepPolicy(
        stale_after_s=0, unsent_after_s=0, lost_after_s=0, max_attempts=5, max_enqueues=5))
    report = sweeper.sweep()
    assert (report.settled, report.failed, report.requeued, report.lost) == ([], [], [], [])
    assert day_rows(db, task_id) == before
    assert queued(app_module) == 0
    # Resumed, it is the sweeper's again (and the resume sent the dead worker's day too).
    assert api.resume(task_id).status_code == 200
    assert queued_days(stack) == [d["day"] for d in before]


def test_resume_sends_every_open_day_but_one_a_live_lease_holds(api, db, stack):
    task_id = start(api, {"start_date": "2025-10-08", "end_date": "2025-10-11"})
    with db.transaction() as cur:
        cur.execute("UPDATE sync_job_days SET status = 'running', attempts = 1, lease_token = %(l)s, "
                    "lease_until = now() + interval '1 minute' WHERE day = '2025-10-09'", {"l": "c" * 32})
        cur.execute("UPDATE sync_job_days SET status = 'running', attempts = 1, lease_token = %(l)s, "
                    "lease_until = now() - interval '1 second' WHERE day = '2025-10-10'", {"l": "d" * 32})
        cur.execute("UPDATE sync_job_days SET status = 'success', finished_at = now() WHERE day = '2025-10-08'")
    assert api.pause(task_id).status_code == 200
    stack.sqs_client().purge_queue(QueueUrl=stack.env["SQS_QUEUE_URL"])
    assert api.resume(task_id).status_code == 200
    assert queued_days(stack) == ["2025-10-10", "2025-10-11"]


def test_a_hand_off_that_finds_its_job_paused_lets_its_claim_go_for_the_resume(
        api, db, workers, app_module, stack):
    from chalicelib.queue import DayMessage
    task_id = start(api, {"start_date": "2025-10-09", "end_date": "2025-10-09"})
    stack.sqs_client().purge_queue(QueueUrl=stack.env["SQS_QUEUE_URL"])
    lease = "e" * 32  # its own claim, still live, carried by a database-outage hand-off
    with db.transaction() as cur:
        cur.execute("UPDATE sync_job_days SET status = 'running', attempts = 1, lease_token = %(l)s, "
                    "lease_until = now() + interval '1 minute'", {"l": lease})
    assert api.pause(task_id).status_code == 200
    app_module.get_queue().send_later(DayMessage(task_id, date(2025, 10, 9), lease=lease, outages=1), 0)
    assert workers.handle(1) == 1 and workers.loop.failed == 0
    row = fetch_all(db, "SELECT status, attempts, lease_token FROM sync_job_days")[0]
    assert row == {"status": "pending", "attempts": 1, "lease_token": None}
    assert api.resume(task_id).status_code == 200
    final = workers.run_until_settled(task_id)
    assert final["success"] == 1
    assert scalar(db, "SELECT attempts FROM sync_job_days") == 2


def test_resume_with_the_queue_down_answers_503_and_the_job_stays_paused(api, db, app_module, workers):
    from chalicelib.errors import ServiceUnavailable
    from chalicelib.jobs import JobService
    from chalicelib.queue import DayQueue
    from devstack.services import sqs_client
    task_id = start(api, {"start_date": "2025-10-09", "end_date": "2025-10-10"})
    assert api.pause(task_id).status_code == 200
    assert workers.drain() == 2  # consumed while paused
    dead = DayQueue(sqs_client("http://127.0.0.1:9", "ap-east-1"), "http://127.0.0.1:9/000000000000/none")
    with pytest.raises(ServiceUnavailable) as raised:
        JobService(app_module.get_db(), dead).resume(task_id, "ops")
    assert raised.value.code == "queue_unavailable" and raised.value.status_code == 503
    assert raised.value.zh == "消息队列暂时不可用，任务已暂停，请稍后恢复"
    assert scalar(db, "SELECT status FROM sync_jobs") == "paused"
    assert [kind for kind, _ in event_kinds(api, task_id)] == ["created", "paused", "resumed", "paused"]
    assert api.resume(task_id).status_code == 200  # the queue is back
    assert workers.run_until_settled(task_id)["success"] == 2
