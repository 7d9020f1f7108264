"""The fault suite: each of stocksync's delivery guarantees as a test on the real local
services. It ends with a report line of what was injected and what was lost (nothing)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

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
from devstack.services import sqs_client
from devstack.stack import ROOT
from devstack.worker_loop import WorkerLoop
from tests.conftest import fetch_all, scalar

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
    assert scalar(db, "SELECT count(*) FROM synced_dates") == 4
    check_rows(db, stack, source, ledger, TRADING)


# 3. Crash safety.

def worker_process(stack) -> subprocess.Popen:
    env = {**os.environ, **stack.env}
    process = subprocess.Popen([sys.executable, "-m", "devstack.worker_loop", "--workers", "1"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout.readline().strip() == b"worker ready"
    return process


def wait_for(condition, timeout_s=30.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_worker_killed_during_its_write_leaves_no_rows_and_the_day_completes(
        app_module, db, workers, stack, source, ledger):
    day = date(2025, 10, 9)
    task_id = app_module.get_jobs().create(BatchRequest(day, day)).task_id
    # Hold the worker inside its write transaction: its COPY into daily_bars (a new
    # day's path; the upsert's INSERT on a stored day) waits on this lock.
    blocker = psycopg2.connect(stack.env["DATABASE_URL"])
    blocker.cursor().execute("LOCK TABLE daily_bars IN SHARE MODE")
    process = worker_process(stack)
    try:
        wait_for(lambda: scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                    "AND (query LIKE 'INSERT INTO daily_bars%%' OR query LIKE 'COPY daily_bars %%')"),
                 what="the worker's write")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        ledger.crashes += 1
    finally:
        blocker.rollback()
        blocker.close()
        if process.poll() is None:
            process.kill()
    # The server rolls the orphaned transaction back once it sees the client gone.
    wait_for(lambda: not scalar(db, "SELECT count(*) FROM pg_stat_activity "
                                    "WHERE (query LIKE 'INSERT INTO daily_bars%%' OR query LIKE 'COPY daily_bars %%') "
                                    "AND pid <> pg_backend_pid()"),
             what="the killed worker's session to end")
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
