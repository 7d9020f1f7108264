"""The fault suite: each of stocksync's delivery guarantees as a test on the real local
services. It ends with a report line of what was injected and what was lost (nothing)."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import psutil
import psycopg2
import pytest
import requests

from chalicelib.errors import ServiceUnavailable
from chalicelib.jobs import JobService
from chalicelib.queue import DayMessage, DayQueue
from chalicelib.source import TushareSource, make_client
from chalicelib.sweeper import Sweeper, SweepPolicy
from chalicelib.trading_calendar import TradingCalendar
from chalicelib.validation import BatchRequest
from chalicelib.worker import DayWorker, RetryPolicy
from devstack.services import free_port, sqs_client
from devstack.stack import ROOT, StackError, check_port_free, wait_for_api
from devstack.worker_loop import WorkerLoop
from tests.conftest import fetch_all, scalar, wait_for

pytestmark = pytest.mark.faults

BATCH = "/api/v1/sync-status/sync/batch"
HOLIDAY = BatchRequest(date(2025, 9, 29), date(2025, 10, 10))  # 4 trading days of 12
TRADING = [date(2025, 9, 29), date(2025, 9, 30), date(2025, 10, 9), date(2025, 10, 10)]


@pytest.fixture
def source(stack):
    return TushareSource(make_client(stack.env["TUSHARE_TOKEN"], stack.env["TUSHARE_API_URL"], 5))


def check_rows(db, stack, source, ledger, days) -> None:
    """Every synced day holds exactly the source's rows: none lost, none doubled."""
    stack.tushare.clear_faults()
    for day in days:
        expected = source.daily(day)
        stored = fetch_all(db, "SELECT ts_code, close FROM daily_bars WHERE trade_date = %(d)s", {"d": day})
        stored_codes = [r["ts_code"] for r in stored]
        closes = dict(zip(expected["ts_code"], expected["close"]))
        lost = len(set(closes) - set(stored_codes)) + sum(
            1 for r in stored if r["ts_code"] in closes and r["close"] != closes[r["ts_code"]])
        doubled = len(stored_codes) - len(set(stored_codes)) + len(set(stored_codes) - set(closes))
        ledger.rows_checked += len(closes)
        ledger.rows_lost += lost
        ledger.rows_duplicated += doubled
        assert (lost, doubled) == (0, 0), f"{day}: {lost} rows lost, {doubled} doubled"


def run_to_end(workers, task_id, threads=1, timeout_s=90):
    return workers.run_until_settled(task_id, timeout_s=timeout_s, threads=threads)


# 1. One active job, always.

def test_fifty_concurrent_posts_create_exactly_one_job(stack, db):
    barrier = threading.Barrier(50)

    def post(i: int) -> int:
        start = date(2025, 1, 1) + timedelta(days=i)
        body = {"start_date": start.isoformat(), "end_date": (start + timedelta(days=5)).isoformat()}
        barrier.wait()
        return requests.post(stack.api_url + BATCH, json=body, timeout=60,
                             headers={"Authorization": f"Bearer {stack.api_token}"}).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(post, range(50)))
    assert sorted(codes) == [200] + [409] * 49
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 1
    assert scalar(db, "SELECT count(*) FROM sync_job_days") == 6


def test_the_database_itself_refuses_a_second_active_job(db):
    with db.transaction() as cur:
        cur.execute("INSERT INTO sync_jobs (task_id, start_date, end_date) VALUES ('a', '2025-01-01', '2025-01-02')")
    with pytest.raises(psycopg2.errors.UniqueViolation):
        with db.transaction() as cur:
            cur.execute("INSERT INTO sync_jobs (task_id, start_date, end_date) VALUES ('b', '2025-01-01', '2025-01-02')")


# 2. Exactly-once effect.

def test_three_deliveries_of_every_day_by_two_workers_equal_one(app_module, db, workers, stack, source, ledger):
    jobs = app_module.get_jobs()
    task_id = jobs.create(HOLIDAY).task_id
    queue = app_module.get_queue()
    queue.send_days(task_id, HOLIDAY.days)
    queue.send_days(task_id, HOLIDAY.days)
    ledger.duplicated += 2 * len(HOLIDAY.days)
    final = run_to_end(workers, task_id, threads=2)
    while workers.handle(10):
        pass
    after = jobs.progress(task_id).as_json()
    assert (after["success"], after["failed"], after["skipped"], after["rows"]) == \
        (final["success"], final["failed"], final["skipped"], final["rows"]) == (4, 0, 8, after["rows"])
    assert after["rows"] == scalar(db, "SELECT count(*) FROM daily_bars")
    assert scalar(db, "SELECT count(*) FROM synced_dates WHERE dataset = 'daily'") == 4
    check_rows(db, stack, source, ledger, TRADING)


# 3. Crash safety.

# How a worker's write of a day's bars begins: COPY for a new day, INSERT for a stored one.
BARS_WRITES = ("INSERT INTO daily_bars", "COPY daily_bars ")

def worker_process(stack) -> subprocess.Popen:
    env = {**os.environ, **stack.env}
    process = subprocess.Popen([sys.executable, "-m", "devstack.worker_loop", "--workers", "1"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout.readline().strip() == b"worker ready"
    return process


def held_table(stack, table: str):
    """A connection holding `table` in SHARE mode: a worker's write to it waits on it."""
    blocker = psycopg2.connect(stack.env["DATABASE_URL"])
    blocker.cursor().execute(f"LOCK TABLE {table} IN SHARE MODE")
    return blocker


def statements_running(db, starts: tuple[str, ...], waiting: bool = False) -> int:
    """Other sessions running a statement that begins with one of `starts` (waiting on a lock)."""
    return scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE (NOT %(waiting)s OR wait_event_type = 'Lock') "
                      "AND query LIKE ANY(%(patterns)s) AND pid <> pg_backend_pid()",
                  {"waiting": waiting, "patterns": [start + "%" for start in starts]})


def kill_worker_inside(stack, db, ledger, table: str, starts: tuple[str, ...], what: str) -> None:
    """A worker process, SIGKILLed while its write to `table` (held) waits inside its
    transaction; returns once the server has seen the session gone."""
    blocker = held_table(stack, table)
    process = worker_process(stack)
    try:
        wait_for(lambda: statements_running(db, starts, waiting=True), what=what)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        ledger.crashes += 1
    finally:
        blocker.rollback()
        blocker.close()
        if process.poll() is None:
            process.kill()
    # The server rolls the orphaned transaction back once it sees the client gone.
    wait_for(lambda: not statements_running(db, starts), what="the killed worker's session to end")


def test_worker_killed_during_its_write_leaves_no_rows_and_the_day_completes(
        app_module, db, workers, stack, source, ledger):
    day = date(2025, 10, 9)
    task_id = app_module.get_jobs().create(BatchRequest(day, day)).task_id
    # Killed inside its write transaction: its COPY into daily_bars (a new day's path; the
    # upsert's INSERT on a stored day) waits on the held table.
    kill_worker_inside(stack, db, ledger, "daily_bars", BARS_WRITES, what="the worker's write")
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 0
    assert scalar(db, "SELECT status FROM sync_job_days WHERE task_id = %(t)s", {"t": task_id}) == "running"
    # SQS hands the message back after its visibility timeout; the day completes.
    final = run_to_end(workers, task_id)
    assert (final["success"], final["failed"]) == (1, 0)
    assert scalar(db, "SELECT attempts FROM sync_job_days WHERE task_id = %(t)s", {"t": task_id}) == 2
    check_rows(db, stack, source, ledger, [day])


# 4. Data-source faults.

def test_every_transient_fault_kind_is_retried_to_success(app_module, db, workers, stack, source, ledger):
    faults = {"20250929": "timeout", "20250930": "http_500", "20251009": "http_502", "20251010": "empty"}
    for trade_date, kind in faults.items():
        stack.tushare.add_fault(kind, api="daily", trade_date=trade_date, times=1, delay=2)
    stack.tushare.add_fault("http_500", api="trade_cal", times=1)
    ledger.faults += len(faults) + 1
    task_id = app_module.get_jobs().create(HOLIDAY).task_id
    final = run_to_end(workers, task_id)
    assert (final["success"], final["failed"], final["skipped"]) == (4, 0, 8)
    attempts = {r["day"]: r["attempts"] for r in fetch_all(
        db, "SELECT day, attempts FROM sync_job_days WHERE task_id = %(t)s", {"t": task_id})}
    # Each fault cost its day exactly one attempt (MAX_ATTEMPTS is 3 in the tests).
    assert sum(attempts.values()) == len(attempts) + len(faults) + 1
    assert all(attempts[d] >= 2 for d in TRADING)
    check_rows(db, stack, source, ledger, TRADING)


def test_rate_limit_waits_for_the_next_minute_not_a_hot_loop(app_module, db, stack, source, ledger):
    day = date(2025, 10, 9)
    task_id = app_module.get_jobs().create(BatchRequest(day, day)).task_id
    stack.tushare.add_fault("rate_limit", api="daily", times=1)
    ledger.faults += 1
    # A clock two seconds before a minute's end: the retry is due three seconds later.
    worker = DayWorker(app_module.get_db(), source, TradingCalendar(app_module.get_db(), source),
                       app_module.get_queue(), RetryPolicy(max_attempts=3, base_s=0, max_s=0),
                       clock=lambda: 1_000_000_018.0)

    def handler(event, context):
        for record in event["Records"]:
            worker.handle_message(record["body"], record["receiptHandle"])
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], handler, wait_s=0)
    assert loop.poll_once() == 1 and loop.failed == 1
    first_retry = time.monotonic()
    calls = stack.tushare.stats()["by_trade_date"]["daily"]["20251009"]
    while time.monotonic() - first_retry < 2.0:  # the message stays hidden meanwhile
        loop.poll_once(wait_s=0)
        time.sleep(0.1)
    assert stack.tushare.stats()["by_trade_date"]["daily"]["20251009"] == calls == 1
    wait_for(lambda: loop.poll_once(wait_s=1) and loop.handled, timeout_s=10, what="the retry")
    assert app_module.get_jobs().progress(task_id).success == 1
    check_rows(db, stack, source, ledger, [day])


def test_invalid_token_fails_fast_with_a_clear_message(app_module, db, workers, stack, ledger):
    stack.tushare.add_fault("bad_token", api="daily", times=None)
    ledger.faults += 1
    task_id = app_module.get_jobs().create(HOLIDAY).task_id
    final = run_to_end(workers, task_id)
    assert final["status"] == "completed" and final["success"] == 0
    errors = {r["error"] for r in fetch_all(
        db, "SELECT error FROM sync_job_days WHERE task_id = %(t)s AND status = 'failed'", {"t": task_id})}
    assert len(errors) == 1 and "token" in errors.pop()
    assert stack.tushare.stats()["calls"]["daily"] == 1


# 5. Completion exactly once.

def test_last_two_days_finishing_together_complete_the_job_once(app_module, db, workers, stack):
    task_id = app_module.get_jobs().create(BatchRequest(date(2025, 10, 9), date(2025, 10, 10))).task_id
    holder = psycopg2.connect(stack.env["DATABASE_URL"])
    holder.cursor().execute("SELECT 1 FROM sync_jobs WHERE task_id = %s FOR UPDATE", (task_id,))
    threads = [threading.Thread(target=workers.handle, args=(1,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        # Both days are written and settled, each waiting for the job row to check completion.
        wait_for(lambda: scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                    "AND query LIKE '%%FROM sync_jobs%%FOR UPDATE%%'") == 2,
                 what="both workers at the completion check")
    finally:
        holder.rollback()
        holder.close()
    for thread in threads:
        thread.join()
    job = fetch_all(db, "SELECT status, message, finished_at FROM sync_jobs WHERE task_id = %(t)s", {"t": task_id})[0]
    assert job["status"] == "completed" and job["finished_at"] is not None
    assert job["message"] == "批量同步完成: 成功2, 失败0, 跳过0"


# 6. No stuck jobs.

class ProcessDied(BaseException):
    """The API's process ending between its commit and its enqueue."""


class DiesBeforeSending:
    def send_days(self, task_id, days):
        raise ProcessDied()


def sweeper(app_module, **policy) -> Sweeper:
    return Sweeper(app_module.get_db(), app_module.get_queue(), SweepPolicy(**policy))


def test_days_never_enqueued_are_sent_by_the_sweeper(app_module, db, workers, ledger):
    with pytest.raises(ProcessDied):
        JobService(app_module.get_db(), DiesBeforeSending()).create(HOLIDAY)
    ledger.crashes += 1
    task_id = scalar(db, "SELECT task_id FROM sync_jobs")
    assert workers.handle(1) == 0  # nothing reached the queue
    report = sweeper(app_module, unsent_after_s=0).sweep()
    assert len(report.requeued) == 12
    final = run_to_end(workers, task_id)
    assert (final["success"], final["skipped"]) == (4, 8)


def test_day_whose_worker_died_is_resent_and_completes(app_module, db, workers, stack, ledger):
    day = date(2025, 10, 9)
    task_id = app_module.get_jobs().create(BatchRequest(day, day)).task_id
    with db.transaction() as cur:  # a worker claimed it, then died, and its message was lost
        cur.execute("UPDATE sync_job_days SET status = 'running', attempts = 1, started_at = now()")
    stack.sqs_client().purge_queue(QueueUrl=stack.env["SQS_QUEUE_URL"])
    ledger.crashes += 1
    assert sweeper(app_module, stale_after_s=3600).sweep().requeued == []  # not stale yet
    assert sweeper(app_module, stale_after_s=0).sweep().requeued == [(task_id, day)]
    assert run_to_end(workers, task_id)["success"] == 1


def test_days_out_of_attempts_are_failed_and_free_the_lock(app_module, db, api):
    task_id = app_module.get_jobs().create(BatchRequest(date(2025, 10, 9), date(2025, 10, 10))).task_id
    with db.transaction() as cur:
        cur.execute("UPDATE sync_job_days SET status = 'running', attempts = 5, "
                    "enqueued_at = now() - interval '61 minutes', started_at = now() - interval '1 hour'")
    report = sweeper(app_module, stale_after_s=60, max_attempts=5).sweep()
    assert len(report.failed) == 2 and report.requeued == []
    progress = app_module.get_jobs().progress(task_id)
    assert (progress.status, progress.failed) == ("completed", 2)
    assert api.start({"start_date": "2025-10-01", "end_date": "2025-10-02"}).status_code == 200


def test_dead_lettered_message_fails_its_day(app_module, db, stack, ledger):
    day = date(2025, 10, 9)
    task_id = app_module.get_jobs().create(BatchRequest(day, day)).task_id
    sqs = stack.sqs_client()
    sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=DayMessage(task_id, day).to_body())
    ledger.faults += 1
    dead = WorkerLoop(sqs, stack.dlq_url, app_module.dead_letter_day, wait_s=1)
    assert dead.poll_once() == 1 and dead.handled == 1
    row = fetch_all(db, "SELECT status, error FROM sync_job_days WHERE task_id = %(t)s", {"t": task_id})[0]
    assert row["status"] == "failed" and "dead-lettered" in row["error"]
    assert app_module.get_jobs().progress(task_id).status == "completed"
    redrive = sqs.get_queue_attributes(QueueUrl=stack.env["SQS_QUEUE_URL"], AttributeNames=["RedrivePolicy"])
    assert "stocksync-days-dlq" in redrive["Attributes"]["RedrivePolicy"]


# 7. Database restarts.

def test_database_restart_mid_batch_gives_503_then_the_batch_completes(
        app_module, db, workers, stack, source, ledger):
    jobs = app_module.get_jobs()
    task_id = jobs.create(HOLIDAY).task_id
    workers.handle(3)
    stack.postgres.halt()
    ledger.crashes += 1
    try:
        answer = requests.get(f"{stack.api_url}{BATCH}/progress/{task_id}", timeout=30,
                              headers={"Authorization": f"Bearer {stack.api_token}"})
        assert answer.status_code == 503
        assert answer.json()["status"] == "error" and answer.json()["code"] == "database_unavailable"
        assert answer.json()["message"] == "数据库暂时不可用，请稍后重试"
        failed_before = workers.loop.failed
        assert workers.handle(1) == 1  # the handler fails: its message goes back to the queue
        assert workers.loop.failed == failed_before + 1
    finally:
        stack.postgres.resume()
    final = run_to_end(workers, task_id)
    assert (final["success"], final["failed"], final["skipped"]) == (4, 0, 8)
    assert requests.get(f"{stack.api_url}{BATCH}/progress/{task_id}", timeout=30,
                        headers={"Authorization": f"Bearer {stack.api_token}"}).status_code == 200
    check_rows(db, stack, source, ledger, TRADING)


# 8. SQS down when a job is created.

def test_queue_unreachable_at_creation_answers_503_and_leaves_nothing_pending(app_module, db, api):
    dead_sqs = sqs_client("http://127.0.0.1:9", "ap-east-1")
    broken = JobService(app_module.get_db(), DayQueue(dead_sqs, "http://127.0.0.1:9/000000000000/none"))
    with pytest.raises(ServiceUnavailable) as raised:
        broken.create(HOLIDAY)
    assert raised.value.code == "queue_unavailable" and raised.value.status_code == 503
    job = fetch_all(db, "SELECT status FROM sync_jobs")[0]
    assert job["status"] == "cancelled"
    assert scalar(db, "SELECT count(*) FROM sync_job_days WHERE status = 'pending'") == 0
    assert api.start({"start_date": "2025-10-01", "end_date": "2025-10-02"}).status_code == 200


# 9. No message is retried for a reason that cannot change.

NO_JOB = "2025-10-09_2025-10-09_1700000000"  # a task id's shape; no job has it
DAY_OF = {"task_id": NO_JOB, "day": "2025-10-09"}
# SQS carries these characters only (its documented set), up to 256 KiB.
SQS_LIMIT_BYTES = 262_144


def sqs_can_carry(body) -> bool:
    return (isinstance(body, str) and len(body.encode("utf-8", "surrogatepass")) <= SQS_LIMIT_BYTES
            and all(c in "\t\n\r" or " " <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd"
                    or c >= "\U00010000" for c in body))


POISON_BODIES = [
    pytest.param("", id="empty"),
    pytest.param("not json", id="not-json"),
    pytest.param("\ufeff" + json.dumps(DAY_OF), id="byte-order-mark"),
    pytest.param("null", id="json-null"),
    pytest.param("[]", id="json-array"),
    pytest.param("42", id="json-number"),
    pytest.param("NaN", id="json-nan"),
    pytest.param('"2025-10-09"', id="json-string"),
    pytest.param("true", id="json-true"),
    pytest.param("{}", id="empty-object"),
    pytest.param(json.dumps({"day": "2025-10-09"}), id="task-id-missing"),
    pytest.param(json.dumps({"task_id": 7, "day": "2025-10-09"}), id="task-id-number"),
    pytest.param(json.dumps({"task_id": ["x"], "day": "2025-10-09"}), id="task-id-array"),
    pytest.param(json.dumps({"task_id": "nope", "day": "2025-10-09"}), id="task-id-shape"),
    pytest.param(json.dumps({**DAY_OF, "task_id": NO_JOB + "\n"}), id="task-id-newline"),
    pytest.param(json.dumps({**DAY_OF, "task_id": NO_JOB[:-1] + "\u0661"}), id="task-id-arabic-digit"),
    pytest.param('{"task_id": "2025-10-09_2025-10-09_1\\u0000", "day": "2025-10-09"}', id="task-id-nul"),
    pytest.param('{"task_id": "2025-10-09_2025-10-09_1\\ud800", "day": "2025-10-09"}',
                 id="task-id-lone-surrogate"),
    pytest.param(json.dumps({"task_id": NO_JOB}), id="day-missing"),
    pytest.param(json.dumps({**DAY_OF, "day": 20251009}), id="day-number"),
    pytest.param(json.dumps({**DAY_OF, "day": "20251009"}), id="day-basic-iso"),
    pytest.param(json.dumps({**DAY_OF, "day": "2025-10-09T00:00"}), id="day-with-time"),
    pytest.param(json.dumps({**DAY_OF, "day": "2025-02-30"}), id="day-not-real"),
    pytest.param(json.dumps({**DAY_OF, "day": "２０２５-10-09"}), id="day-fullwidth-digits"),
    pytest.param('{"task_id": "2025-10-09_2025-10-09_1", "day": "2025-10-0\\u0000"}', id="day-nul"),
    pytest.param(json.dumps({**DAY_OF, "lease": 5}), id="lease-number"),
    pytest.param(json.dumps({**DAY_OF, "lease": "x" * 32}), id="lease-shape"),
    pytest.param(json.dumps({**DAY_OF, "outages": -1}), id="outages-negative"),
    pytest.param(json.dumps({**DAY_OF, "outages": True}), id="outages-boolean"),
    pytest.param(json.dumps({**DAY_OF, "outages": 2.5}), id="outages-float"),
    pytest.param("[" * 1500 + "]" * 1500, id="nested-3000-chars-deep"),
    pytest.param('{"a":' * 900 + "1" + "}" * 900, id="nested-objects"),
    pytest.param("[" * 200_000, id="nested-200k-open"),
    pytest.param('{"n": ' + "1" * 5000 + "}", id="integer-5000-digits"),
    pytest.param(json.dumps({**DAY_OF, "pad": "x" * 200_000}), id="oversized"),
    pytest.param(json.dumps(DAY_OF), id="no-such-job"),
    pytest.param(json.dumps({**DAY_OF, "extra": {"a": [1, None]}}), id="no-such-job-extra-keys"),
    pytest.param(json.dumps({**DAY_OF, "lease": "0" * 32, "outages": 3}), id="no-such-job-hand-off"),
    # Bodies SQS itself refuses: delivered under a real message's receipt handle.
    pytest.param("\x00", id="raw-nul"),
    pytest.param('{"task_id": "\ud800", "day": "2025-10-09"}', id="raw-lone-surrogate"),
    pytest.param("\ufffe" * 10 + "\x07", id="raw-control"),
    pytest.param(b"\xff\xfe{}", id="bytes-not-utf8"),
    pytest.param(json.dumps(DAY_OF).encode(), id="bytes-utf8-no-such-job"),
    pytest.param(None, id="none"),
    pytest.param(DAY_OF, id="a-dict-not-text"),
]


def deliver_once(loop: WorkerLoop, sqs, queue_url: str, body) -> None:
    """Through SQS when SQS can carry the body; else a real message with the body swapped in."""
    if sqs_can_carry(body):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        assert loop.poll_once(wait_s=5) == 1
        return
    sqs.send_message(QueueUrl=queue_url, MessageBody="carrier")
    message = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5,
                                  AttributeNames=["All"])["Messages"][0]
    loop.invoke({**message, "Body": body})


def queue_counts(sqs, queue_url: str) -> dict[str, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return {name: int(value) for name, value in attributes.items()}


@pytest.mark.parametrize("body", POISON_BODIES)
def test_any_body_is_consumed_once_with_one_log_line_by_both_handlers(
        body, app_module, db, stack, ledger, caplog):
    sqs = stack.sqs_client()
    for queue_url, handler in ((stack.env["SQS_QUEUE_URL"], app_module.sync_day),
                               (stack.dlq_url, app_module.dead_letter_day)):
        loop = WorkerLoop(sqs, queue_url, handler, wait_s=1)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="chalicelib"):
            deliver_once(loop, sqs, queue_url, body)
        assert (loop.handled, loop.failed) == (1, 0), "the handler raised: SQS would deliver it again"
        assert queue_counts(sqs, queue_url) == {"ApproximateNumberOfMessages": 0,
                                                "ApproximateNumberOfMessagesNotVisible": 0,
                                                "ApproximateNumberOfMessagesDelayed": 0}
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("chalicelib")]
        assert len(lines) == 1, lines
        assert any(why in lines[0] for why in ("dropped", "no such job day", "no such day")), lines[0]
        assert len(lines[0]) < 400  # never the body itself, unbounded
        ledger.poison_consumed += 1
    assert scalar(db, "SELECT count(*) FROM sync_job_days") == 0


def test_message_for_a_day_outside_its_job_is_consumed_once(app_module, db, stack, workers, ledger):
    day = date(2025, 10, 9)
    task_id = app_module.get_jobs().create(BatchRequest(day, day)).task_id
    assert workers.handle(1) == 1  # the job's own day
    stack.sqs_client().send_message(QueueUrl=stack.env["SQS_QUEUE_URL"],
                                    MessageBody=DayMessage(task_id, date(2025, 10, 10)).to_body())
    assert workers.handle(1) == 1 and workers.loop.failed == 0
    assert workers.handle(1) == 0
    ledger.poison_consumed += 1
    assert [r["day"] for r in fetch_all(db, "SELECT day FROM sync_job_days")] == [day]


# 10. Every day of an ended job is settled.

def own_worker(app_module, source, lease_s=10.0) -> DayWorker:
    """The app's worker, but with a source whose timeout outlasts a held answer."""
    db = app_module.get_db()
    return DayWorker(db, source, TradingCalendar(db, source), app_module.get_queue(),
                     RetryPolicy(max_attempts=3, base_s=0, max_s=0), lease_s=lease_s)


def lambda_handler(worker: DayWorker):
    def handler(event, context):
        for record in event["Records"]:
            worker.handle_message(record["body"], record["receiptHandle"])
    return handler


@contextmanager
def worker_held_after_its_claim(app_module, stack, db, source) -> Iterator[WorkerLoop]:
    """One delivery handled in a thread and held after its claim, in its calendar lookup (a
    3 s trade_cal timeout): the body runs while the day is leased; the delivery ends after."""
    stack.tushare.add_fault("timeout", api="trade_cal", times=1, delay=3)
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"],
                      lambda_handler(own_worker(app_module, source)), wait_s=1)
    worker = threading.Thread(target=loop.poll_once)
    worker.start()
    try:
        wait_for(lambda: stack.tushare.stats()["calls"].get("trade_cal") and scalar(
            db, "SELECT count(*) FROM sync_job_days WHERE status = 'running'"), what="the worker's claim")
        yield loop
    finally:
        worker.join()


@pytest.mark.parametrize("meets, settles_as", [
    ("transient error", ("skipped", "cancelled")),
    ("permanent error", ("skipped", "cancelled")),
    ("its last attempt's error", ("skipped", "cancelled")),
    ("success", ("success", None)),
])
def test_cancelled_jobs_running_day_is_settled_whatever_its_worker_meets(
        meets, settles_as, app_module, db, stack, source, ledger):
    day = date(2025, 10, 9)
    jobs = app_module.get_jobs()
    task_id = jobs.create(BatchRequest(day, day)).task_id
    if meets == "its last attempt's error":
        with db.transaction() as cur:  # two attempts already spent: this claim is the third, the last
            cur.execute("UPDATE sync_job_days SET attempts = 2")
    kind = {"transient error": "http_500", "permanent error": "bad_token",
            "its last attempt's error": "http_502"}.get(meets)
    if kind:
        stack.tushare.add_fault(kind, api="daily", times=None)
    ledger.faults += 1 + bool(kind)
    # The worker is held in its calendar fetch, after its claim, while the job is cancelled.
    with worker_held_after_its_claim(app_module, stack, db, source) as loop:
        cancelled = jobs.cancel(task_id)
        assert (cancelled.status, cancelled.current, cancelled.total) == ("cancelled", 0, 1)
    assert (loop.handled, loop.failed) == (1, 0)  # settled: no redelivery to wait for
    row = fetch_all(db, "SELECT status, skip_reason FROM sync_job_days")[0]
    assert (row["status"], row["skip_reason"]) == settles_as
    progress = jobs.progress(task_id)
    assert (progress.status, progress.current, progress.total) == ("cancelled", 1, 1)
    ledger.stragglers_settled += 1


def test_cancelled_jobs_days_whose_workers_died_are_settled_once_their_leases_lapse(
        app_module, db, stack, workers, ledger):
    jobs = app_module.get_jobs()
    task_id = jobs.create(BatchRequest(date(2025, 10, 9), date(2025, 10, 11))).task_id
    with db.transaction() as cur:  # three claims whose workers died: two leases lapsed, one live
        cur.execute("UPDATE sync_job_days SET status = 'running', attempts = 1, lease_token = md5(day::text), "
                    "lease_until = now() + CASE WHEN day = '2025-10-09' THEN interval '5 seconds' "
                    "ELSE interval '-1 second' END")
    ledger.crashes += 3
    cancelled = jobs.cancel(task_id)
    # Lapsed leases mean no worker has them: cancel skips them at once.
    assert (cancelled.status, cancelled.current, cancelled.total) == ("cancelled", 2, 3)
    assert sweeper(app_module).sweep().settled == []  # the live lease's worker may still commit
    # A delivery of that day meanwhile waits for the lease rather than touch it.
    assert workers.handle(3) == 3
    assert scalar(db, "SELECT status FROM sync_job_days WHERE day = '2025-10-09'") == "running"
    time.sleep(max(0.0, scalar(db, "SELECT extract(epoch FROM max(lease_until) - now())::float "
                                   "FROM sync_job_days") or 0) + 0.2)
    assert sweeper(app_module).sweep().settled == [(task_id, date(2025, 10, 9))]
    rows = fetch_all(db, "SELECT status, skip_reason FROM sync_job_days")
    assert {(r["status"], r["skip_reason"]) for r in rows} == {("skipped", "cancelled")}
    progress = jobs.progress(task_id)
    assert (progress.status, progress.current, progress.total, progress.skipped) == ("cancelled", 3, 3, 3)
    workers.drain()  # the deferred delivery comes back after the lease and finds the day settled
    ledger.stragglers_settled += 3


def test_cancelled_jobs_day_found_pending_by_its_redelivery_is_settled(app_module, db, workers, ledger):
    day = date(2025, 10, 9)
    jobs = app_module.get_jobs()
    task_id = jobs.create(BatchRequest(day, day)).task_id
    with db.transaction() as cur:  # the state a release racing the cancel leaves
        cur.execute("UPDATE sync_jobs SET status = 'cancelled', finished_at = now()")
    ledger.faults += 1
    assert workers.handle(1) == 1 and workers.loop.failed == 0
    row = fetch_all(db, "SELECT status, skip_reason, attempts FROM sync_job_days")[0]
    assert (row["status"], row["skip_reason"], row["attempts"]) == ("skipped", "cancelled", 0)
    assert jobs.progress(task_id).current == 1
    ledger.stragglers_settled += 1


# 11. Leases instead of guesses.

def test_delivery_finding_a_live_lease_neither_claims_nor_counts_and_looks_again_when_it_ends(
        app_module, db, stack, workers, ledger):
    day = date(2025, 10, 9)
    task_id = app_module.get_jobs().create(BatchRequest(day, day)).task_id
    with db.transaction() as cur:  # another delivery's claim, its lease live for 10 s more
        cur.execute("UPDATE sync_job_days SET status = 'running', attempts = 1, lease_token = %(t)s, "
                    "lease_until = now() + interval '10 seconds'", {"t": "a" * 32})
    ledger.duplicated += 1
    assert workers.handle(1) == 1 and workers.loop.failed == 1  # returned, not consumed
    row = fetch_all(db, "SELECT status, attempts, lease_token FROM sync_job_days")[0]
    assert (row["status"], row["attempts"], row["lease_token"]) == ("running", 1, "a" * 32)
    # Hidden until the lease ends, well past the queue's own 2 s visibility timeout.
    deferred_at = time.monotonic()
    while time.monotonic() - deferred_at < 3:
        assert workers.loop.poll_once(wait_s=0) == 0
        time.sleep(0.2)
    assert queue_counts(stack.sqs_client(), stack.env["SQS_QUEUE_URL"])[
        "ApproximateNumberOfMessagesNotVisible"] == 1
    # The lease's holder never settles (it died): after the lease, the day is taken over.
    final = run_to_end(workers, task_id)
    assert final["success"] == 1
    assert scalar(db, "SELECT attempts FROM sync_job_days") == 2


def test_slow_but_alive_worker_and_a_redelivery_never_both_fetch_the_day(
        app_module, db, stack, source, ledger):
    day = date(2025, 10, 9)
    task_id = app_module.get_jobs().create(BatchRequest(day, day)).task_id
    # The first worker's fetch answers after 6 s: three times the queue's visibility
    # timeout, so SQS hands the same message to a second worker meanwhile.
    stack.tushare.add_fault("timeout", api="daily", trade_date=day, times=1, delay=6)
    ledger.faults += 1
    sqs = stack.sqs_client()
    patient = TushareSource(make_client(stack.env["TUSHARE_TOKEN"], stack.env["TUSHARE_API_URL"], 20))
    slow = WorkerLoop(sqs, stack.env["SQS_QUEUE_URL"],
                      lambda_handler(own_worker(app_module, patient, lease_s=20)), wait_s=1)
    second = WorkerLoop(sqs, stack.env["SQS_QUEUE_URL"], app_module.sync_day, wait_s=1)
    first = threading.Thread(target=slow.poll_once)
    first.start()
    try:
        wait_for(lambda: stack.tushare.stats()["by_trade_date"].get("daily", {}).get("20251009"),
                 what="the first worker's fetch")
        wait_for(lambda: second.poll_once(wait_s=1), timeout_s=20, what="the redelivery")
        ledger.duplicated += 1
        assert second.failed == 1  # it found the lease: back to the queue, untouched
        assert scalar(db, "SELECT attempts FROM sync_job_days") == 1
    finally:
        first.join()
    assert slow.handled == 1
    assert app_module.get_jobs().progress(task_id).success == 1
    assert stack.tushare.stats()["by_trade_date"]["daily"]["20251009"] == 1  # one fetch, ever
    assert scalar(db, "SELECT attempts FROM sync_job_days") == 1
    # The message is gone: deleted by the first worker (moto honours its older receipt
    # handle), or, as SQS may not, returned when the lease would have ended, found
    # settled and consumed.
    def drained() -> bool:
        second.poll_once(wait_s=1)
        return not any(queue_counts(sqs, stack.env["SQS_QUEUE_URL"]).values())
    wait_for(drained, timeout_s=40, what="the queue to empty")
    assert second.failed == 1
    assert stack.tushare.stats()["by_trade_date"]["daily"]["20251009"] == 1
    check_rows(db, stack, source, ledger, [day])


# 12. Recovery in seconds from a database outage, and no day dead-lettered by one.

def settled_days(db, task_id) -> int:
    return scalar(db, "SELECT count(*) FROM sync_job_days WHERE task_id = %(t)s "
                      "AND status IN ('success', 'failed', 'skipped')", {"t": task_id})


def test_database_outage_past_the_dead_letter_limit_fails_no_day_and_the_batch_resumes_in_seconds(
        app_module, db, workers, stack, source, ledger):
    jobs = app_module.get_jobs()
    task_id = jobs.create(HOLIDAY).task_id
    assert workers.handle(2) == 2
    before = settled_days(db, task_id)
    options = stack.options
    # Longer than SQS would take to dead-letter a message that fails on every receive.
    outage_s = options.visibility_timeout_s * options.max_receive_count + 5
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day,
                      workers=2, wait_s=1)
    stack.postgres.halt()
    ledger.crashes += 1
    loop.start()
    try:
        time.sleep(outage_s)
        assert loop.failed >= 10 and loop.handled == 0  # every delivery meanwhile found it down
    finally:
        stack.postgres.resume()
    back = time.monotonic()
    try:
        wait_for(lambda: settled_days(db, task_id) > before, timeout_s=120,
                 what="the batch to move again")
        ledger.database_return_s = time.monotonic() - back
        wait_for(lambda: jobs.progress(task_id).status != "running", timeout_s=120,
                 what="the batch to complete")
    finally:
        loop.stop()
    final = jobs.progress(task_id)
    assert (final.success, final.failed, final.skipped) == (4, 0, 8)
    assert scalar(db, "SELECT max(attempts) FROM sync_job_days WHERE task_id = %(t)s", {"t": task_id}) == 1
    assert not any(queue_counts(stack.sqs_client(), stack.dlq_url).values())  # nothing dead-lettered
    check_rows(db, stack, source, ledger, TRADING)


# 13. Lost messages found in minutes.

def test_messages_lost_from_the_queue_are_sent_again_and_the_next_job_starts(
        app_module, db, stack, api, ledger):
    jobs = app_module.get_jobs()
    task_id = jobs.create(HOLIDAY).task_id
    sqs = stack.sqs_client()
    loop = WorkerLoop(sqs, stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2, wait_s=1)
    for _ in range(3):
        assert loop.poll_once(wait_s=1) == 1
    # Quiet or not, a job whose messages wait in the queue has lost nothing.
    assert sweeper(app_module, lost_after_s=0).sweep().lost == []
    sqs.purge_queue(QueueUrl=stack.env["SQS_QUEUE_URL"])
    lost_at = time.monotonic()
    before = settled_days(db, task_id)
    open_at_loss = [r["day"] for r in fetch_all(db, "SELECT day FROM sync_job_days WHERE task_id = %(t)s "
                                                    "AND status = 'pending' ORDER BY day", {"t": task_id})]
    assert len(open_at_loss) == 9
    ledger.faults += 1
    found: list = []
    stop = threading.Event()

    def schedule() -> None:  # the sweeper's timer, at test scale: quiet for 2 s means lost
        while not stop.wait(0.5):
            found.extend(sweeper(app_module, lost_after_s=2).sweep().lost)
    timer = threading.Thread(target=schedule)
    timer.start()
    loop.start()
    try:
        wait_for(lambda: settled_days(db, task_id) > before, timeout_s=60, what="the batch to move again")
        ledger.message_loss_s = time.monotonic() - lost_at
        wait_for(lambda: jobs.progress(task_id).status != "running", timeout_s=60,
                 what="the batch to complete")
    finally:
        stop.set()
        timer.join()
        loop.stop()
    assert sorted(d for _, d in found) == open_at_loss  # each lost day sent again, once
    final = jobs.progress(task_id)
    assert (final.success, final.failed, final.skipped) == (4, 0, 8)
    assert api.start({"start_date": "2025-10-01", "end_date": "2025-10-02"}).status_code == 200


# 14. Ended jobs are kept JOB_RETENTION_DAYS, then pruned in bounded batches.

def test_sweeper_prunes_ended_jobs_past_their_retention_in_bounded_batches(app_module, db):
    with db.transaction() as cur:
        for task_id, status, ended_days_ago in (("old-1", "completed", 400), ("old-2", "cancelled", 300),
                                                ("old-3", "completed", 181), ("recent", "completed", 179),
                                                ("running", "running", None)):
            cur.execute("INSERT INTO sync_jobs (task_id, start_date, end_date, status, created_at, finished_at) "
                        "VALUES (%(t)s, '2025-10-01', '2025-10-03', %(s)s, now() - interval '500 days', "
                        "now() - make_interval(days => %(d)s))", {"t": task_id, "s": status, "d": ended_days_ago})
            cur.execute("INSERT INTO sync_job_days (task_id, day, status, enqueued_at) "
                        "SELECT %(t)s, d::date, CASE WHEN %(s)s = 'running' THEN 'pending' ELSE 'success' END, now() "
                        "FROM generate_series('2025-10-01'::date, '2025-10-03', interval '1 day') d",
                        {"t": task_id, "s": status})
        cur.execute("UPDATE sync_jobs SET finished_at = NULL WHERE status = 'running'")
    pruning = sweeper(app_module, retention_days=180, prune_batch=2)
    assert pruning.sweep().pruned == ["old-1", "old-2"]  # oldest first, two per sweep
    assert pruning.sweep().pruned == ["old-3"]
    assert pruning.sweep().pruned == []
    assert sweeper(app_module, retention_days=0).sweep().pruned == []  # 0 keeps them forever
    assert [r["task_id"] for r in fetch_all(db, "SELECT task_id FROM sync_jobs ORDER BY 1")] == ["recent", "running"]
    assert fetch_all(db, "SELECT task_id, count(*) AS n FROM sync_job_days GROUP BY 1 ORDER BY 1") == [
        {"task_id": "recent", "n": 3}, {"task_id": "running", "n": 3}]
    assert app_module.get_sweeper()._policy.retention_days == 180  # JOB_RETENTION_DAYS' default


# 16. Pause and resume: a day in flight finishes whole, a paused job's days wait unclaimed.

def held_write(stack):
    """A connection holding daily_bars in SHARE mode: a worker's write waits on it."""
    return held_table(stack, "daily_bars")


def write_waiting(db) -> bool:
    return bool(statements_running(db, BARS_WRITES, waiting=True))


def job_days(db, task_id):
    return {r["day"]: r for r in fetch_all(db, "SELECT day, status, attempts, rows_written, enqueued_at "
                                               "FROM sync_job_days WHERE task_id = %(t)s", {"t": task_id})}


def test_pause_while_a_day_is_written_lets_it_commit_whole_and_starts_no_other_day(
        app_module, db, workers, stack, source, ledger):
    jobs = app_module.get_jobs()
    task_id = jobs.create(BatchRequest(date(2025, 10, 9), date(2025, 10, 10))).task_id
    blocker = held_write(stack)
    writer = threading.Thread(target=workers.handle, args=(1,))
    writer.start()
    try:
        wait_for(lambda: write_waiting(db), what="the worker's write")
        paused = jobs.pause(task_id, "ops")  # does not wait for the write: it holds no job lock
        assert (paused.status, paused.current) == ("paused", 0)
    finally:
        blocker.rollback()
        blocker.close()
        writer.join()
    ledger.faults += 1
    ledger.pause_races += 1
    days = job_days(db, task_id)
    (written,) = [d for d, r in days.items() if r["status"] == "success"]
    (waiting,) = [d for d, r in days.items() if r["status"] == "pending"]
    check_rows(db, stack, source, ledger, [written])  # committed whole after the pause
    progress = jobs.progress(task_id)
    assert (progress.status, progress.success, progress.current) == ("paused", 1, 1)
    calls = stack.tushare.stats()["by_trade_date"]["daily"]
    assert workers.drain() == 1 and workers.loop.failed == 0  # the other day's message: consumed
    assert job_days(db, task_id)[waiting]["attempts"] == 0
    assert stack.tushare.stats()["by_trade_date"]["daily"] == calls  # nothing fetched while paused
    jobs.resume(task_id, "ops")
    final = run_to_end(workers, task_id)
    assert (final["status"], final["success"]) == ("completed", 2)
    assert {r["attempts"] for r in job_days(db, task_id).values()} == {1}
    # The waiting day fetched once, after the resume (the written one's count includes check_rows').
    assert stack.tushare.stats()["by_trade_date"]["daily"] == {**calls, waiting.strftime("%Y%m%d"): 1}
    check_rows(db, stack, source, ledger, [written, waiting])


def test_pausing_a_job_whose_last_day_is_settling_ends_it_completed_once(
        app_module, db, workers, stack, source, ledger, api):
    jobs = app_module.get_jobs()
    day = date(2025, 10, 9)
    task_id = jobs.create(BatchRequest(day, day)).task_id
    blocker = held_write(stack)
    writer = threading.Thread(target=workers.handle, args=(1,))
    writer.start()
    try:
        wait_for(lambda: write_waiting(db), what="the worker's write")
        assert jobs.pause(task_id, "ops").status == "paused"
    finally:
        blocker.rollback()
        blocker.close()
        writer.join()
    ledger.faults += 1
    ledger.pause_races += 1
    # Nothing is left to start: the paused job completed with its last day, and said so once.
    progress = jobs.progress(task_id)
    assert (progress.status, progress.success, progress.paused_at) == ("completed", 1, None)
    assert [e["kind"] for e in jobs.events(task_id)] == ["created", "paused", "completed"]
    check_rows(db, stack, source, ledger, [day])
    assert api.start({"start_date": "2025-10-01", "end_date": "2025-10-02"}).status_code == 200


def test_a_claim_under_way_when_the_pause_comes_is_let_through_and_later_ones_wait(
        app_module, db, workers, stack, source, ledger):
    jobs = app_module.get_jobs()
    task_id = jobs.create(BatchRequest(date(2025, 10, 9), date(2025, 10, 10))).task_id
    holder = psycopg2.connect(stack.env["DATABASE_URL"])  # holds the days: both wait on it, in turn
    holder.cursor().execute("SELECT 1 FROM sync_job_days WHERE task_id = %s FOR UPDATE", (task_id,))
    waiting = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
               "AND query LIKE %(q)s")
    delivery = threading.Thread(target=workers.handle, args=(1,))
    pause = threading.Thread(target=jobs.pause, args=(task_id, "ops"))
    delivery.start()
    try:
        wait_for(lambda: scalar(db, waiting, {"q": "%FROM sync_job_days d%FOR UPDATE OF d%"}),
                 what="the delivery at its claim")
        pause.start()  # behind the claim: it locks the days a delivery could claim
        wait_for(lambda: scalar(db, waiting, {"q": "%ORDER BY day%FOR UPDATE%"}), what="the pause")
    finally:
        holder.rollback()
        holder.close()
        delivery.join()
        if pause.ident:
            pause.join()
    ledger.faults += 1
    ledger.pause_races += 1
    # The claim came first: its day was let through, and finished whole; the pause then held.
    days = job_days(db, task_id)
    (claimed,) = [d for d, r in days.items() if r["status"] == "success"]
    (other,) = [d for d, r in days.items() if r["status"] == "pending"]
    assert days[claimed]["attempts"] == 1 and days[other]["attempts"] == 0
    progress = jobs.progress(task_id)
    assert (progress.status, progress.success) == ("paused", 1)
    # A delivery after the pause: consumed, not claimed, nothing fetched.
    calls = stack.tushare.stats()["by_trade_date"]["daily"]
    assert workers.drain() == 1 and workers.loop.failed == 0
    assert job_days(db, task_id)[other]["attempts"] == 0
    assert stack.tushare.stats()["by_trade_date"]["daily"] == calls
    jobs.resume(task_id)
    assert run_to_end(workers, task_id)["success"] == 2
    check_rows(db, stack, source, ledger, [claimed, other])


def test_a_day_released_by_a_transient_error_while_paused_waits_for_the_resume(
        app_module, db, stack, source, ledger, workers):
    jobs = app_module.get_jobs()
    day = date(2025, 10, 9)
    task_id = jobs.create(BatchRequest(day, day)).task_id
    # Held after its claim (in the calendar lookup) while the job is paused; then its fetch
    # fails, transiently.
    stack.tushare.add_fault("http_500", api="daily", times=1)
    with worker_held_after_its_claim(app_module, stack, db, source) as loop:
        assert jobs.pause(task_id).status == "paused"
    ledger.faults += 2
    ledger.pause_races += 1
    assert (loop.handled, loop.failed) == (0, 1)  # released for a retry
    row = fetch_all(db, "SELECT status, attempts, error FROM sync_job_days")[0]
    assert (row["status"], row["attempts"]) == ("pending", 1) and row["error"]
    # Its retry comes back at once (backoff 0 here) and is consumed: the job is paused.
    wait_for(lambda: loop.poll_once(wait_s=1) and loop.handled, timeout_s=20, what="the retry's delivery")
    assert (loop.handled, loop.failed) == (1, 1)
    assert scalar(db, "SELECT attempts FROM sync_job_days") == 1
    assert stack.tushare.stats()["calls"]["daily"] == 1
    assert not any(queue_counts(stack.sqs_client(), stack.env["SQS_QUEUE_URL"]).values())
    jobs.resume(task_id)
    assert run_to_end(workers, task_id)["success"] == 1
    assert scalar(db, "SELECT attempts FROM sync_job_days") == 2
    check_rows(db, stack, source, ledger, [day])


def test_a_day_still_leased_at_resume_is_not_sent_again_and_a_stale_message_changes_nothing(
        app_module, db, stack, source, ledger, workers):
    jobs = app_module.get_jobs()
    task_id = jobs.create(BatchRequest(date(2025, 10, 9), date(2025, 10, 10))).task_id
    with worker_held_after_its_claim(app_module, stack, db, source) as loop:
        before = job_days(db, task_id)
        (held,) = [d for d, r in before.items() if r["status"] == "running"]
        (other,) = [d for d, r in before.items() if r["status"] == "pending"]
        jobs.pause(task_id)
        jobs.resume(task_id)  # while the held day's lease is live
        after = job_days(db, task_id)
        assert after[held]["enqueued_at"] == before[held]["enqueued_at"]  # not sent again
        assert after[other]["enqueued_at"] > before[other]["enqueued_at"]  # sent again
    ledger.faults += 1
    ledger.pause_races += 1
    ledger.duplicated += 1  # the other day's first message is still queued: it now has two
    assert loop.handled == 1
    final = run_to_end(workers, task_id)
    workers.drain()
    assert (final["status"], final["success"]) == ("completed", 2)
    assert {r["attempts"] for r in job_days(db, task_id).values()} == {1}
    assert set(stack.tushare.stats()["by_trade_date"]["daily"].values()) == {1}
    check_rows(db, stack, source, ledger, [held, other])


# 15. The local stack survives its own crash.

def serve(port: int, data_dir, lines: list[str]) -> subprocess.Popen:
    """`make serve` as its own process: its own embedded PostgreSQL and API; the session's
    queue and sample tushare (their variables are in this environment); no workers."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(PORT=str(port), WORKERS="0", STOCKSYNC_DATA_DIR=str(data_dir))
    process = subprocess.Popen([sys.executable, "-m", "devstack.serve"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    return process


def gone(process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_serve_killed_with_sigkill_takes_its_children_and_a_busy_port_is_refused(stack, tmp_path, ledger):
    port = free_port()
    lines: list[str] = []
    process = serve(port, tmp_path / "first", lines)
    try:
        wait_for(lambda: any("stocksync is up" in line for line in lines) or process.poll() is not None,
                 timeout_s=180, what="make serve to start")
        assert process.poll() is None, "".join(lines)
        children = psutil.Process(process.pid).children(recursive=True)
        api = [c for c in children if "devstack.chalice_local" in " ".join(c.cmdline())]
        assert len(api) == 1 and requests.get(f"http://127.0.0.1:{port}/sync-status", timeout=10).ok
        postmaster = psutil.Process(int((tmp_path / "first" / "pgdata" / "postmaster.pid").read_text().split()[0]))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        ledger.crashes += 1
    finally:
        if process.poll() is None:
            process.kill()
    wait_for(lambda: all(gone(p) for p in children + [postmaster]), timeout_s=60,
             what="the killed stack's API, reaper and database to stop")
    check_port_free(port)  # raises if anything still listens there
    assert any("stocksync reaper" in line for line in lines)

    # A start on a port something else listens on is refused before it starts anything.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        refused: list[str] = []
        second = serve(busy, tmp_path / "second", refused)
        assert second.wait(timeout=120) == 1
    assert any(f"port {busy} is already in use" in line for line in refused), refused
    assert not (tmp_path / "second").exists()


def test_a_server_on_the_port_other_than_the_api_just_started_is_refused():
    class Foreign(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Foreign)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(StackError, match="another server answers"):
            wait_for_api(f"http://127.0.0.1:{server.server_address[1]}", "this-start", api)
    finally:
        api.kill()
        api.wait()
        server.shutdown()
        server.server_close()
