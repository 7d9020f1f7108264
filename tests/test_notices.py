"""Completion notices on the real local stack: moto's SNS (observed through an SQS queue
subscribed to the topic) and the dev stack's webhook receiver, which checks signatures.

One notice per job ending and destination: when a job completes or is cancelled, through
workers killed mid-ending and mid-send, and when its last two days settle at once; a
failing destination is retried, then recorded as failed, and never fails the job.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from datetime import date

import boto3
import psycopg2
import pytest
import requests

from chalicelib import notices
from chalicelib.config import ConfigError, parse_webhooks
from chalicelib.jobs import complete_job_if_done
from chalicelib.notices import (NOTICE_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign,
                                verify)
from chalicelib.validation import BatchRequest
from devstack.tokens import LOCAL_TOKEN_NAME
from tests.conftest import fetch_all, scalar, wait_for
from tests.test_faults import kill_worker_inside, worker_process

HOLIDAY = BatchRequest(date(2025, 9, 29), date(2025, 10, 10))  # 4 trading days of 12
TWO_DAYS = BatchRequest(date(2025, 10, 9), date(2025, 10, 10))
DESTINATIONS = ["sns", "webhook:local"]


class SnsInbox:
    """An SQS queue subscribed to the notices topic (raw delivery): what SNS delivered."""

    def __init__(self, stack):
        region = stack.env["AWS_REGION"]
        self._sqs = stack.sqs_client()
        self._sns = boto3.client("sns", endpoint_url=stack.env["SNS_ENDPOINT_URL"], region_name=region)
        self.url = self._sqs.create_queue(QueueName=f"notices-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.subscription = self._sns.subscribe(
            TopicArn=stack.notice_topic_arn, Protocol="sqs", Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"}, ReturnSubscriptionArn=True)["SubscriptionArn"]
        self._seen: list[dict] = []

    def messages(self) -> list[dict]:
        """Everything delivered so far: {"body": ..., "attributes": {...}}."""
        while True:
            answer = self._sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=0, MessageAttributeNames=["All"])
            batch = answer.get("Messages", [])
            if not batch:
                return list(self._seen)
            for message in batch:
                attributes = {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}
                self._seen.append({"body": json.loads(message["Body"]), "attributes": attributes})
                self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def close(self) -> None:
        self._sns.unsubscribe(SubscriptionArn=self.subscription)
        self._sqs.delete_queue(QueueUrl=self.url)


@pytest.fixture
def sns_inbox(stack, db):
    inbox = SnsInbox(stack)
    yield inbox
    inbox.close()


@pytest.fixture
def receiver(stack, db):
    return stack.webhooks


def notice_rows(db, task_id):
    return fetch_all(db, "SELECT notice_id::text, ending, destination, status, attempts, last_error, "
                         "payload FROM job_notices WHERE task_id = %(t)s ORDER BY ending, destination",
                     {"t": task_id})


def delivered(receiver, task_id):
    return [d for d in receiver.verified() if d.body and d.body["task_id"] == task_id]


def sns_for(inbox, task_id):
    return [m for m in inbox.messages() if m["body"]["task_id"] == task_id]


def test_a_completed_job_sends_one_signed_notice_to_each_destination(
        app_module, db, workers, receiver, sns_inbox, stack):
    task_id = app_module.get_jobs().create(HOLIDAY, created_by=LOCAL_TOKEN_NAME).task_id
    final = workers.run_until_settled(task_id)
    # Sent right away by the worker that ended the job: no sweep has run.
    rows = notice_rows(db, task_id)
    assert [(r["destination"], r["ending"], r["status"], r["attempts"]) for r in rows] == [
        ("sns", 1, "sent", 1), ("webhook:local", 1, "sent", 1)]
    (hook,) = delivered(receiver, task_id)
    webhook_row = rows[1]
    assert hook.notice_id == webhook_row["notice_id"] == hook.body["notice_id"]
    body = hook.body
    assert {k: body[k] for k in ("kind", "status", "task_id", "ending", "start_date", "end_date",
                                 "total", "success", "failed", "skipped", "rows", "created_by",
                                 "cancelled_by")} == {
        "kind": "job_ended", "status": "completed", "task_id": task_id, "ending": 1,
        "start_date": "2025-09-29", "end_date": "2025-10-10", "total": 12, "success": 4,
        "failed": 0, "skipped": 8, "rows": final["rows"], "created_by": LOCAL_TOKEN_NAME,
        "cancelled_by": None}
    assert body["finished_at"] == final["finished_at"] and body["created_at"] == final["created_at"]
    assert "同步任务已完成" in body["summary"]["zh"] and "成功 4 天" in body["summary"]["zh"]
    assert "sync job completed" in body["summary"]["en"] and "4 days synced" in body["summary"]["en"]
    assert "http" not in body["summary"]["zh"] + body["summary"]["en"]  # a link-free summary
    assert verify(receiver.secret, hook.headers, json.dumps(body, ensure_ascii=False,
                                                            separators=(",", ":")).encode())
    (message,) = sns_for(sns_inbox, task_id)
    assert message["body"]["notice_id"] == rows[0]["notice_id"] != hook.notice_id
    assert {k: v for k, v in message["body"].items() if k != "notice_id"} == \
        {k: v for k, v in body.items() if k != "notice_id"}
    assert message["attributes"] == {"notice_id": rows[0]["notice_id"], "task_id": task_id,
                                     "status": "completed", "ending": "1"}
    assert scalar(db, "SELECT endings FROM sync_jobs WHERE task_id = %(t)s", {"t": task_id}) == 1


def test_cancel_sends_one_notice_per_destination_naming_who_cancelled(
        api, db, receiver, sns_inbox):
    task_id = api.start({"start_date": "2025-10-01", "end_date": "2025-10-09"}).json_body["data"]["task_id"]
    assert api.cancel(task_id).status_code == 200
    (hook,) = delivered(receiver, task_id)
    assert (hook.body["status"], hook.body["cancelled_by"], hook.body["created_by"]) == \
        ("cancelled", LOCAL_TOKEN_NAME, LOCAL_TOKEN_NAME)
    assert hook.body["skipped"] == 9 and "已取消" in hook.body["summary"]["zh"]
    assert f"Cancelled by {LOCAL_TOKEN_NAME}" in hook.body["summary"]["en"]
    (message,) = sns_for(sns_inbox, task_id)
    assert message["attributes"]["status"] == "cancelled"
    assert [r["status"] for r in notice_rows(db, task_id)] == ["sent", "sent"]
    # Cancelling again ends nothing: no new notice.
    assert api.cancel(task_id).status_code == 409
    assert len(notice_rows(db, task_id)) == 2 and len(delivered(receiver, task_id)) == 1


def test_each_ending_of_a_reopened_job_gets_its_own_notices(app_module, db, workers, receiver, sns_inbox):
    """A retried job (issue 13a reopens an ended one) ends again: ending 2, new notices."""
    task_id = app_module.get_jobs().create(TWO_DAYS).task_id
    workers.run_until_settled(task_id)
    with db.transaction() as cur:  # what a retry does to the job: running again, a day open
        cur.execute("UPDATE sync_jobs SET status = 'running', finished_at = NULL WHERE task_id = %(t)s",
                    {"t": task_id})
        cur.execute("UPDATE sync_job_days SET status = 'pending' WHERE task_id = %(t)s AND day = '2025-10-10'",
                    {"t": task_id})
    app_module.get_queue().send_days(task_id, [date(2025, 10, 10)])
    workers.run_until_settled(task_id)
    rows = notice_rows(db, task_id)
    assert [(r["ending"], r["destination"], r["status"]) for r in rows] == [
        (1, "sns", "sent"), (1, "webhook:local", "sent"), (2, "sns", "sent"), (2, "webhook:local", "sent")]
    assert sorted(d.body["ending"] for d in delivered(receiver, task_id)) == [1, 2]
    assert sorted(m["body"]["ending"] for m in sns_for(sns_inbox, task_id)) == [1, 2]
    assert "第 2 次结束" in rows[2]["payload"]["summary"]["zh"]


def test_an_ending_is_written_once_whatever_calls_it(app_module, db):
    task_id = app_module.get_jobs().create(TWO_DAYS).task_id
    with db.transaction() as cur:
        cur.execute("UPDATE sync_job_days SET status = 'success' WHERE task_id = %(t)s", {"t": task_id})
        assert complete_job_if_done(cur, task_id) is True
        assert complete_job_if_done(cur, task_id) is False  # ended already: nothing more
        # The outbox's key refuses a second row for the same ending and destination.
        cur.execute("INSERT INTO job_notices (task_id, ending, destination, payload) "
                    "VALUES (%(t)s, 1, 'sns', '{}') ON CONFLICT DO NOTHING RETURNING 1", {"t": task_id})
        assert cur.fetchone() is None
    assert [(r["ending"], r["destination"]) for r in notice_rows(db, task_id)] == [
        (1, "sns"), (1, "webhook:local")]


def test_without_destinations_an_ending_is_counted_and_writes_no_notice(app_module, db):
    task_id = app_module.get_jobs().create(TWO_DAYS).task_id
    configured = notices.destinations()
    notices.use_destinations(())
    try:
        app_module.get_jobs().cancel(task_id)
    finally:
        notices.use_destinations(configured)
    assert notice_rows(db, task_id) == []
    assert scalar(db, "SELECT endings FROM sync_jobs WHERE task_id = %(t)s", {"t": task_id}) == 1


def test_a_failing_webhook_is_retried_then_recorded_failed_and_the_job_is_not(
        app_module, db, workers, receiver, sns_inbox):
    receiver.fail_next(10, status=503)
    task_id = app_module.get_jobs().create(TWO_DAYS).task_id
    final = workers.run_until_settled(task_id)
    assert final["status"] == "completed" and final["failed"] == 0
    rows = {r["destination"]: r for r in notice_rows(db, task_id)}
    assert (rows["sns"]["status"], rows["webhook:local"]["status"]) == ("sent", "pending")
    assert rows["webhook:local"]["last_error"] == "webhook local answered HTTP 503"
    events = app_module.get_job_events()
    for attempt in (2, 3):  # MAX 3 attempts in the tests; each sweep retries what is due
        events.sweep()
        row = notice_rows(db, task_id)[1]
        assert row["attempts"] == attempt
    assert (row["status"], row["last_error"]) == ("failed", "webhook local answered HTTP 503")
    events.sweep()  # given up: no fourth try
    assert len(delivered(receiver, task_id)) == 3 and notice_rows(db, task_id)[1]["attempts"] == 3
    assert app_module.get_jobs().progress(task_id).as_json() == final
    assert len(sns_for(sns_inbox, task_id)) == 1


def test_a_failed_send_waits_for_its_backoff_and_then_goes_through(
        app_module, db, workers, receiver, configure):
    configure(notify_retry_base_s=3600.0, notify_retry_max_s=3600.0)
    receiver.fail_next(1, status=500)
    task_id = app_module.get_jobs().create(TWO_DAYS).task_id
    workers.run_until_settled(task_id)
    events = app_module.get_job_events()
    events.sweep()  # not due for an hour
    row = notice_rows(db, task_id)[1]
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert scalar(db, "SELECT due_at > now() + interval '59 minutes' FROM job_notices "
                      "WHERE task_id = %(t)s AND destination = 'webhook:local'", {"t": task_id})
    with db.transaction() as cur:
        cur.execute("UPDATE job_notices SET due_at = now() WHERE task_id = %(t)s", {"t": task_id})
    events.sweep()
    row = notice_rows(db, task_id)[1]
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 2, None)
    # Both tries carried the same notice id: a receiver that saw the first keeps one.
    assert [d.notice_id for d in delivered(receiver, task_id)] == [row["notice_id"]] * 2
    assert [d.answered for d in delivered(receiver, task_id)] == [500, 204]


def test_a_webhook_checks_the_signature_over_timestamp_and_body(receiver, db):
    body = json.dumps({"notice_id": "x", "task_id": "t"}).encode()
    now = str(int(time.time()))
    good = {TIMESTAMP_HEADER: now, SIGNATURE_HEADER: sign(receiver.secret, now, body), NOTICE_ID_HEADER: "x"}
    assert verify(receiver.secret, good, body)
    assert not verify(receiver.secret, good, body + b" ")  # the body changed
    assert not verify("another secret", good, body)
    stale = str(int(time.time()) - 3600)
    assert not verify(receiver.secret, {**good, TIMESTAMP_HEADER: stale,
                                        SIGNATURE_HEADER: sign(receiver.secret, stale, body)}, body)
    assert not verify(receiver.secret, {**good, TIMESTAMP_HEADER: "soon"}, body)
    # A known vector: hex HMAC-SHA256 of "<timestamp>.<body>".
    assert sign("k", "1", b"{}") == "v1=" + __import__("hmac").new(b"k", b"1.{}", "sha256").hexdigest()
    # The receiver refuses a forged notice and records it as unverified.
    forged = requests.post(receiver.url, data=body, timeout=10, headers={
        **good, SIGNATURE_HEADER: sign("guess", now, body), "Content-Type": "application/json"})
    assert forged.status_code == 401
    assert requests.post(receiver.url, data=body, timeout=10, headers=good).status_code == 204
    assert [d.verified for d in receiver.deliveries()] == [False, True]


@pytest.mark.parametrize("text, complaint", [
    ("ops=http://hooks.example.com/x", "https is required"),
    ("ops=https://user:pw@hooks.example.com/x", "no user or password"),
    ("ops=ftp://hooks.example.com/x", "https is required"),
    ("o p s=https://hooks.example.com/x", "expected name="),
    ("ops=https://a.example.com/x,ops=https://b.example.com/y", "listed twice"),
    ("https://hooks.example.com/x", "expected name="),
])
def test_webhooks_come_from_configuration_and_only_as_https(text, complaint):
    with pytest.raises(ConfigError, match=complaint) as refused:
        parse_webhooks(text, "secret")
    assert "example.com" not in str(refused.value)  # never the URL: it may be a credential
    with pytest.raises(ConfigError, match="NOTIFY_WEBHOOK_SECRET"):
        parse_webhooks("ops=https://hooks.example.com/x", "")
    hooks = parse_webhooks("ops=https://hooks.example.com/x\nlocal=http://127.0.0.1:9/n,v6=http://[::1]:9/", "s")
    assert [(h.destination, h.url) for h in hooks] == [
        ("webhook:ops", "https://hooks.example.com/x"), ("webhook:local", "http://127.0.0.1:9/n"),
        ("webhook:v6", "http://[::1]:9/")]


def test_the_api_cannot_be_told_where_to_send(app_module, api):
    """No route takes a destination: the only receivers are the configured ones."""
    document = app_module.openapi.describe(app_module.app.routes)
    assert "webhook" not in json.dumps(document).lower()
    assert "url" not in json.dumps(document["components"]["schemas"]).lower()


# --- exactly once, through crashes and races (the fault suite) -------------------------

@pytest.mark.faults
def test_last_two_days_settling_at_once_send_one_notice_per_destination(
        app_module, db, workers, stack, receiver, sns_inbox):
    task_id = app_module.get_jobs().create(TWO_DAYS).task_id
    holder = psycopg2.connect(stack.env["DATABASE_URL"])
    holder.cursor().execute("SELECT 1 FROM sync_jobs WHERE task_id = %s FOR UPDATE", (task_id,))
    threads = [threading.Thread(target=workers.handle, args=(1,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        # Both days written and settled, each waiting for the job row to check completion.
        wait_for(lambda: scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                    "AND query LIKE '%%FROM sync_jobs%%FOR UPDATE%%'") == 2,
                 what="both workers at the completion check")
    finally:
        holder.rollback()
        holder.close()
    for thread in threads:
        thread.join()
    # Both workers then looked for the job's due notices; each was sent by one of them.
    assert [(r["destination"], r["status"], r["attempts"]) for r in notice_rows(db, task_id)] == [
        ("sns", "sent", 1), ("webhook:local", "sent", 1)]
    assert len(delivered(receiver, task_id)) == 1
    assert len(sns_for(sns_inbox, task_id)) == 1


@pytest.mark.faults
def test_a_worker_killed_inside_the_ending_leaves_no_notice_and_the_redelivery_sends_one(
        app_module, db, workers, stack, receiver, sns_inbox, ledger):
    day = date(2025, 10, 9)
    task_id = app_module.get_jobs().create(BatchRequest(day, day)).task_id
    # Killed inside the transaction that ends the job: its notice rows wait on the held table.
    kill_worker_inside(stack, db, ledger, "job_notices", ("INSERT INTO job_notices",),
                       what="the worker's ending")
    # Its day, its rows, the job's completion and the notices died together.
    assert scalar(db, "SELECT status FROM sync_jobs WHERE task_id = %(t)s", {"t": task_id}) == "running"
    assert notice_rows(db, task_id) == [] and delivered(receiver, task_id) == []
    final = workers.run_until_settled(task_id)  # SQS redelivers once the lease lapses
    assert final["status"] == "completed"
    assert [(r["destination"], r["status"]) for r in notice_rows(db, task_id)] == [
        ("sns", "sent"), ("webhook:local", "sent")]
    assert len(delivered(receiver, task_id)) == 1 and len(sns_for(sns_inbox, task_id)) == 1


@pytest.mark.faults
def test_a_sender_killed_mid_send_is_replaced_after_its_lease_with_the_same_notice_id(
        app_module, db, workers, stack, receiver, sns_inbox, ledger):
    day = date(2025, 10, 9)
    task_id = app_module.get_jobs().create(BatchRequest(day, day)).task_id
    receiver.hold_next()  # the webhook gets the notice and does not answer
    process = worker_process(stack)
    try:
        assert receiver.held.wait(60), "the worker never sent the webhook notice"
        os.kill(process.pid, signal.SIGKILL)  # after the destination got it, before it was marked sent
        process.wait()
        ledger.crashes += 1
    finally:
        receiver.release()
        if process.poll() is None:
            process.kill()
    rows = {r["destination"]: r for r in notice_rows(db, task_id)}
    assert rows["sns"]["status"] == "sent"  # sent first (destinations in order), before the kill
    assert (rows["webhook:local"]["status"], rows["webhook:local"]["attempts"]) == ("pending", 1)
    events = app_module.get_job_events()
    events.sweep()  # its lease (3 s in the tests) still holds: nobody else sends it
    assert len(delivered(receiver, task_id)) == 1
    time.sleep(3.2)
    events.sweep()
    row = notice_rows(db, task_id)[1]
    assert (row["status"], row["attempts"]) == ("sent", 2)
    hooks = delivered(receiver, task_id)
    # At least once, deduplicable: the same notice id twice (the killed sender's got there).
    assert [d.notice_id for d in hooks] == [row["notice_id"]] * 2
    assert len(sns_for(sns_inbox, task_id)) == 1
