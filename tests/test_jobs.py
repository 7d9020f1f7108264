"""Job creation, the one-job rule, progress aggregation and cancellation, through the API."""
from __future__ import annotations

import json
import re

from tests.conftest import fetch_all, scalar

SEED_REQUEST = {"start_date": "2025-10-01", "end_date": "2025-10-09"}


def queued_messages(stack) -> list[dict]:
    sqs = stack.sqs_client()
    bodies = []
    while True:
        answer = sqs.receive_message(QueueUrl=stack.env["SQS_QUEUE_URL"],
                                     MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                     VisibilityTimeout=30)
        if not answer.get("Messages"):
            return bodies
        bodies.extend(json.loads(m["Body"]) for m in answer["Messages"])


def test_start_answers_with_the_seed_response(api, db):
    response = api.start(SEED_REQUEST)
    assert response.status_code == 200
    body = response.json_body
    assert body["status"] == "success"
    assert re.fullmatch(r"2025-10-01_2025-10-09_\d{10}", body["data"]["task_id"])
    assert body["data"]["total_days"] == 9
    assert body["data"]["message"] == "批量同步任务已启动，将同步 9 天的数据"


def test_start_writes_the_job_and_one_row_and_one_message_per_day(api, db, stack):
    task_id = api.start(SEED_REQUEST).json_body["data"]["task_id"]
    days = fetch_all(db, "SELECT day::text, status, enqueued_at IS NOT NULL AS enqueued "
                         "FROM sync_job_days WHERE task_id = %(t)s ORDER BY day", {"t": task_id})
    assert [d["day"] for d in days] == [f"2025-10-0{i}" for i in range(1, 10)]
    assert all(d["status"] == "pending" and d["enqueued"] for d in days)
    messages = queued_messages(stack)
    assert sorted(m["day"] for m in messages) == [d["day"] for d in days]
    assert {m["task_id"] for m in messages} == {task_id}


def test_second_job_while_one_runs_gets_409_with_the_seed_message(api, db):
    first = api.start(SEED_REQUEST).json_body["data"]["task_id"]
    response = api.start({"start_date": "2025-09-01", "end_date": "2025-09-05"})
    assert response.status_code == 409
    assert response.json_body["status"] == "error"
    assert response.json_body["message"] == "已有同步任务正在运行，请等待当前任务完成后再试"
    assert response.json_body["data"]["task_id"] == first
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 1


def test_progress_of_unknown_task_is_404(api, db):
    response = api.progress("2025-10-01_2025-10-09_0")
    assert response.status_code == 404
    assert response.json_body["status"] == "error"
    assert "2025-10-01_2025-10-09_0" in response.json_body["message"]
    assert "No such task" in api.progress("nope", query="?lang=en").json_body["message"]


def test_progress_before_any_day_ran(api, db):
    task_id = api.start(SEED_REQUEST).json_body["data"]["task_id"]
    body = api.progress(task_id).json_body
    assert body["status"] == "success"
    data = body["data"]
    assert (data["status"], data["total"], data["current"]) == ("running", 9, 0)
    assert (data["success"], data["failed"], data["skipped"], data["rows"]) == (0, 0, 0, 0)
    assert data["percent"] == 0
    assert data["current_date"] == "2025-10-01"
    assert data["message"] == "同步任务已启动，正在同步 9 天的数据..."


def test_progress_mid_job_counts_settled_days(api, db, workers):
    # 2025-09-29 and -30 trade, 10-01.. are National Day: handle four messages in order.
    task_id = api.start({"start_date": "2025-09-29", "end_date": "2025-10-02"}).json_body["data"]["task_id"]
    sqs_order = workers.handle(2)
    assert sqs_order == 2
    data = api.progress(task_id).json_body["data"]
    assert data["status"] == "running"
    assert data["total"] == 4 and data["current"] == 2
    assert data["success"] + data["skipped"] == 2 and data["failed"] == 0
    assert data["percent"] == 50.0
    assert data["message"] == f"正在同步 {data['current_date']}..."
    rows = scalar(db, "SELECT coalesce(sum(rows_written), 0) FROM sync_job_days WHERE task_id = %(t)s",
                  {"t": task_id})
    assert data["rows"] == rows


def test_cancel_skips_days_not_started_and_frees_the_lock(api, db, workers):
    task_id = api.start(SEED_REQUEST).json_body["data"]["task_id"]
    response = api.cancel(task_id)
    assert response.status_code == 200
    data = response.json_body["data"]
    assert data["status"] == "cancelled" and data["skipped"] == 9
    assert scalar(db, "SELECT count(*) FROM sync_job_days WHERE skip_reason = 'cancelled'") == 9
    # The cancelled job's messages are harmless, and a new job may start.
    assert workers.handle(9) == 9
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 0
    assert api.start(SEED_REQUEST).status_code == 200
    assert api.cancel(task_id).status_code == 409
    assert api.cancel("no-such-task").status_code == 404


def test_job_days_lists_every_day(api, db):
    task_id = api.start(SEED_REQUEST).json_body["data"]["task_id"]
    body = api.days(task_id).json_body
    assert [d["day"] for d in body["data"]] == [f"2025-10-0{i}" for i in range(1, 10)]
    assert api.days("no-such-task").status_code == 404
