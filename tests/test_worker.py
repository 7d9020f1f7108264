"""The day worker through SQS and the Lambda handler: skips, writes, retries, duplicates."""
from __future__ import annotations

from datetime import date

from tests.conftest import fetch_all, scalar

# 2025-09-29 and 09-30 trade; 10-01..10-08 are the National Day holiday and a
# weekend; 10-09 and 10-10 trade again.
HOLIDAY_RANGE = {"start_date": "2025-09-29", "end_date": "2025-10-10"}
TRADING = ["2025-09-29", "2025-09-30", "2025-10-09", "2025-10-10"]


def start(api, body=HOLIDAY_RANGE) -> str:
    response = api.start(body)
    assert response.status_code == 200, response.json_body
    return response.json_body["data"]["task_id"]


def day_rows(db, task_id):
    return fetch_all(db, "SELECT day::text, status, skip_reason, attempts, rows_written, error "
                         "FROM sync_job_days WHERE task_id = %(t)s ORDER BY day", {"t": task_id})


def snapshot(db):
    return (scalar(db, "SELECT count(*) FROM daily_bars"),
            scalar(db, "SELECT md5(string_agg(b::text, ',' ORDER BY ts_code, trade_date)) FROM daily_bars b"),
            fetch_all(db, "SELECT dataset, trade_date::text, rows FROM synced_dates ORDER BY 1, 2"))


def test_range_spanning_a_holiday_completes_with_correct_counts(api, db, workers, stack):
    task_id = start(api)
    final = workers.run_until_settled(task_id)
    assert final["status"] == "completed"
    assert (final["total"], final["success"], final["failed"], final["skipped"]) == (12, 4, 0, 8)
    assert final["message"] == "批量同步完成: 成功4, 失败0, 跳过8"
    assert final["percent"] == 100.0
    days = day_rows(db, task_id)
    assert [d["day"] for d in days if d["status"] == "success"] == TRADING
    assert {d["skip_reason"] for d in days if d["status"] == "skipped"} == {"non_trading_day"}
    stored = scalar(db, "SELECT count(*) FROM daily_bars")
    assert final["rows"] == stored == sum(d["rows_written"] for d in days)
    assert all(d["rows_written"] > 4000 for d in days if d["status"] == "success")
    per_date = fetch_all(db, "SELECT trade_date::text AS d, count(*) AS n FROM daily_bars GROUP BY 1 ORDER BY 1")
    assert [r["d"] for r in per_date] == TRADING
    # The per-day rows equal what the source serves for that date.
    served = stack.tushare.stats()
    assert served  # the sample server was really asked


def test_second_identical_job_skips_every_day(api, db, workers):
    workers.run_until_settled(start(api))
    before = snapshot(db)
    calls_before = scalar(db, "SELECT count(*) FROM synced_dates WHERE dataset = 'daily'")
    again = workers.run_until_settled(start(api))
    assert (again["success"], again["failed"], again["skipped"], again["rows"]) == (0, 0, 12, 0)
    reasons = {d["day"]: d["skip_reason"] for d in day_rows(db, again["task_id"])}
    assert {reasons[d] for d in TRADING} == {"already_synced"}
    assert snapshot(db) == before and calls_before == 4


def test_force_syncs_synced_dates_again(api, db, workers):
    workers.run_until_settled(start(api))
    before = snapshot(db)
    forced = workers.run_until_settled(start(api, {**HOLIDAY_RANGE, "force": True}))
    assert (forced["success"], forced["skipped"]) == (4, 8)
    assert forced["rows"] == before[0]
    assert snapshot(db)[:2] == before[:2]


def test_duplicate_and_redelivered_messages_change_nothing(api, db, workers, app_module):
    task_id = start(api)
    # Every message twice before any is handled, by two concurrent pollers.
    app_module.get_queue().send_days(task_id, [date.fromisoformat(d) for d in
                                               [r["day"] for r in day_rows(db, task_id)]])
    final = workers.run_until_settled(task_id, threads=2)
    # Whatever duplicates remain, including those that found a day leased and come
    # back when the lease ends.
    workers.drain()
    after_first = (snapshot(db), day_rows(db, task_id), api.progress(task_id).json_body["data"])
    # And a third delivery of every day after the job completed.
    app_module.get_queue().send_days(task_id, [date.fromisoformat(d["day"]) for d in after_first[1]])
    assert workers.handle(30) == 12
    assert (snapshot(db), day_rows(db, task_id), api.progress(task_id).json_body["data"]) == after_first
    assert (final["success"], final["skipped"]) == (4, 8)
    assert scalar(db, "SELECT count(*) FROM sync_jobs WHERE status = 'completed'") == 1


def test_transient_source_error_is_retried_through_redelivery(api, db, workers, stack):
    stack.tushare.add_fault("http_500", api="daily", trade_date="20251009", times=1)
    stack.tushare.add_fault("timeout", api="daily", trade_date="20251010", times=1, delay=2)
    task_id = start(api)
    final = workers.run_until_settled(task_id)
    assert (final["success"], final["failed"]) == (4, 0)
    attempts = {d["day"]: d["attempts"] for d in day_rows(db, task_id)}
    assert attempts["2025-10-09"] == 2 and attempts["2025-10-10"] == 2
    assert attempts["2025-09-29"] == 1


def test_day_fails_after_bounded_attempts_keeping_the_error(api, db, workers, stack):
    stack.tushare.add_fault("http_500", api="daily", trade_date="20251009", times=None)
    task_id = start(api)
    final = workers.run_until_settled(task_id)
    assert final["status"] == "completed"
    assert (final["success"], final["failed"], final["skipped"]) == (3, 1, 8)
    assert final["message"] == "批量同步完成: 成功3, 失败1, 跳过8"
    failed = [d for d in day_rows(db, task_id) if d["status"] == "failed"]
    assert [d["day"] for d in failed] == ["2025-10-09"]
    assert failed[0]["attempts"] == 3  # MAX_ATTEMPTS in the tests' settings
    assert "no daily rows" in failed[0]["error"] and "after 3 attempts" in failed[0]["error"]
    assert scalar(db, "SELECT count(*) FROM daily_bars WHERE trade_date = '2025-10-09'") == 0
    assert scalar(db, "SELECT count(*) FROM synced_dates WHERE dataset = 'daily' AND trade_date = '2025-10-09'") == 0


def test_trading_day_with_empty_answer_is_not_a_success(api, db, workers, stack):
    stack.tushare.add_fault("empty", api="daily", trade_date="20250930", times=None)
    final = workers.run_until_settled(start(api))
    days = {d["day"]: d for d in day_rows(db, final["task_id"])}
    assert days["2025-09-30"]["status"] == "failed"
    assert days["2025-09-30"]["rows_written"] == 0


def test_invalid_token_fails_the_job_fast_without_burning_retries(api, db, workers, stack):
    stack.tushare.add_fault("bad_token", api="daily", times=None)
    task_id = start(api)
    final = workers.run_until_settled(task_id)
    assert final["status"] == "completed" and final["success"] == 0
    assert final["failed"] + final["skipped"] == 12 and final["failed"] >= 4
    errors = {d["error"] for d in day_rows(db, task_id) if d["status"] == "failed"}
    assert len(errors) == 1 and "token" in errors.pop()
    assert stack.tushare.stats()["calls"]["daily"] == 1


def test_unknown_or_malformed_message_is_dropped(db, workers, app_module, stack):
    sqs = stack.sqs_client()
    sqs.send_message(QueueUrl=stack.env["SQS_QUEUE_URL"], MessageBody="not json")
    sqs.send_message(QueueUrl=stack.env["SQS_QUEUE_URL"],
                     MessageBody='{"task_id": "nope", "day": "2025-10-09"}')
    assert workers.handle(5) == 2
    assert workers.handle(1) == 0  # both were deleted, not redelivered
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 0


# The settings behind leases, outage recovery and lost-message detection, as deployed.

def test_lease_follows_the_worker_functions_timeout_and_lapses_before_sqs_redelivers():
    import json
    from pathlib import Path

    from chalicelib.config import Settings
    root = Path(__file__).resolve().parent.parent
    config = json.loads((root / ".chalice" / "config.json").read_text(encoding="utf-8"))
    queue = json.loads((root / "deploy" / "sam-resources.json").read_text(encoding="utf-8"))[
        "Resources"]["DayQueue"]["Properties"]
    timeout = config["lambda_functions"]["sync_day"]["lambda_timeout"]
    for stage in config["stages"].values():
        env = {**config["environment_variables"], **stage.get("environment_variables", {})}
        settings = Settings.from_env(env)
        assert settings.worker_timeout_s == timeout  # Lambda ends a worker by then: a live worker holds its lease
        assert timeout < settings.lease_s < queue["VisibilityTimeout"]  # a dead worker's message finds it lapsed
        # Lost messages are found within a few minutes: the quiet time plus the 1-minute schedule.
        assert settings.lost_after_s + 60 <= 300
        assert settings.job_retention_days == 180


def test_outage_backoff_brings_a_message_back_within_twenty_seconds_however_long_the_outage():
    from chalicelib.worker import outage_delay_s
    assert [outage_delay_s(n) for n in range(8)] == [2, 4, 8, 16, 20, 20, 20, 20]
    assert outage_delay_s(10**6) == 20


def test_day_message_round_trips_its_hand_off_fields():
    from chalicelib.queue import DayMessage, parse_day_message
    task_id = "2025-10-09_2025-10-09_1700000000"
    plain = DayMessage(task_id, date(2025, 10, 9))
    assert plain.to_body() == '{"task_id": "2025-10-09_2025-10-09_1700000000", "day": "2025-10-09"}'
    handed = DayMessage(task_id, date(2025, 10, 9), lease="0123456789abcdef" * 2, outages=3)
    assert parse_day_message(handed.to_body()) == handed
    assert parse_day_message(plain.to_body().encode()) == plain
