"""The calendar's endpoint, GET /api/v1/sync-status/dates: each date's state, and its checks."""
from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.config import market_today
from chalicelib.dates import STATES, state_of
from tests.conftest import TokenHttp

DATES = "/api/v1/sync-status/dates"
BATCH = "/api/v1/sync-status/sync/batch"


@pytest.fixture
def http(app_module: Any, db: Any, stack: Any):
    with Client(app_module.app) as client:
        yield TokenHttp(client.http, stack.api_token)


def get_dates(http: Any, start: str, end: str, lang: str = "") -> Any:
    query = f"?start={start}&end={end}" + (f"&lang={lang}" if lang else "")
    return http.get(DATES + query)


def by_date(answer: Any) -> dict[str, dict[str, Any]]:
    assert answer.status_code == 200, answer.body
    return {d["date"]: d for d in answer.json_body["data"]["dates"]}


def test_a_synced_range_shows_rows_non_trading_days_and_gaps(http, db, workers):
    # 09-29 and 09-30 trade, 10-01..10-08 are the National Day holiday and its weekend, 10-09 trades.
    started = http.post(BATCH, body=json.dumps({"start_date": "2025-09-30", "end_date": "2025-10-09"}),
                        headers={"content-type": "application/json"})
    task_id = started.json_body["data"]["task_id"]
    workers.run_until_settled(task_id)

    answer = get_dates(http, "2025-09-29", "2025-10-10")
    data = answer.json_body["data"]
    assert (data["start"], data["end"], data["max_range_days"]) == ("2025-09-29", "2025-10-10", 90)
    assert data["today"] == market_today().isoformat()
    days = by_date(answer)
    assert list(days) == [f"2025-09-{d}" for d in (29, 30)] + [f"2025-10-{d:02d}" for d in range(1, 11)]
    for day in ("2025-09-30", "2025-10-09"):
        assert days[day]["state"] == "synced" and days[day]["trading"] is True
        assert days[day]["rows"] > 4000 and days[day]["task_id"] == task_id
        assert days[day]["synced_at"]
    for n in range(1, 9):
        closed = days[f"2025-10-0{n}"]
        assert closed["state"] == "non_trading" and closed["trading"] is False
        assert closed["skip_reason"] == "non_trading_day" and closed["rows"] is None
    # Outside the job, the calendar (cached for the whole year) still knows the trading days: gaps.
    for gap in ("2025-09-29", "2025-10-10"):
        assert days[gap]["state"] == "not_synced" and days[gap]["trading"] is True
        assert days[gap]["task_id"] is None
    assert data["counts"] == {"synced": 2, "failed": 0, "skipped": 0, "non_trading": 8,
                              "not_synced": 2, "pending": 0, "running": 0}


def test_failed_skipped_pending_and_running_days_and_the_newest_job_wins(http, db):
    with db.transaction() as cur:
        cur.execute("""
            INSERT INTO sync_jobs (task_id, start_date, end_date, status, created_at) VALUES
              ('old', '2025-06-02', '2025-06-06', 'completed', now() - interval '1 hour'),
              ('new', '2025-06-03', '2025-06-06', 'running', now());
            INSERT INTO sync_job_days (task_id, day, status, skip_reason, error, rows_written) VALUES
              ('old', '2025-06-02', 'failed', NULL, 'tushare: timeout (after 5 attempts)', 0),
              ('old', '2025-06-03', 'failed', NULL, 'old error', 0),
              ('old', '2025-06-04', 'success', NULL, NULL, 5000),
              ('old', '2025-06-05', 'skipped', 'cancelled', NULL, 0),
              ('old', '2025-06-06', 'success', NULL, NULL, 5001),
              ('new', '2025-06-03', 'success', NULL, NULL, 5100),
              ('new', '2025-06-04', 'running', NULL, NULL, 0),
              ('new', '2025-06-05', 'pending', NULL, 'HTTP 502, retrying', 0),
              ('new', '2025-06-06', 'skipped', 'already_synced', NULL, 0);
            INSERT INTO synced_dates (trade_date, rows, task_id) VALUES
              ('2025-06-03', 5100, 'new'), ('2025-06-04', 5000, 'old'), ('2025-06-06', 5001, 'old');
        """)
    days = by_date(get_dates(http, "2025-06-01", "2025-06-09"))
    assert days["2025-06-02"]["state"] == "failed"
    assert days["2025-06-02"]["error"] == "tushare: timeout (after 5 attempts)"
    assert days["2025-06-02"]["trading"] is None  # the calendar of 2025 is not cached here
    assert (days["2025-06-03"]["state"], days["2025-06-03"]["rows"], days["2025-06-03"]["error"]) == \
        ("synced", 5100, None)  # a later success replaces an earlier failure
    assert days["2025-06-04"]["state"] == "running"  # re-synced by the running job
    assert days["2025-06-04"]["rows"] == 5000
    assert (days["2025-06-05"]["state"], days["2025-06-05"]["error"]) == ("pending", "HTTP 502, retrying")
    assert (days["2025-06-06"]["state"], days["2025-06-06"]["skip_reason"]) == ("synced", "already_synced")
    # No calendar cached: weekends are known closed all the same, a weekday is unknown.
    for weekend in ("2025-06-01", "2025-06-07", "2025-06-08"):
        assert (days[weekend]["state"], days[weekend]["trading"]) == ("non_trading", False)
    assert (days["2025-06-09"]["state"], days["2025-06-09"]["trading"]) == ("not_synced", None)

    with db.transaction() as cur:
        cur.execute("UPDATE sync_jobs SET status = 'cancelled' WHERE task_id = 'new'")
        cur.execute("UPDATE sync_job_days SET status = 'skipped', skip_reason = 'cancelled' "
                    "WHERE task_id = 'new' AND status = 'pending'")
    skipped = by_date(get_dates(http, "2025-06-05", "2025-06-05"))["2025-06-05"]
    assert (skipped["state"], skipped["skip_reason"]) == ("skipped", "cancelled")


@pytest.mark.parametrize("query, code, zh, en", [
    ("?end=2025-10-09", "start_missing", "缺少参数 start（格式 YYYY-MM-DD）",
     "start is required (format YYYY-MM-DD)"),
    ("?start=2025-10-01", "end_missing", "缺少参数 end（格式 YYYY-MM-DD）",
     "end is required (format YYYY-MM-DD)"),
    ("?start=2025/10/01&end=2025-10-09", "start_format",
     "start 日期格式错误: '2025/10/01'，应为 YYYY-MM-DD", "start must be a date as YYYY-MM-DD, got '2025/10/01'"),
    ("?start=2025-02-30&end=2025-03-09", "start_invalid", "start 不是有效日期: 2025-02-30",
     "start is not a real date: 2025-02-30"),
    ("?start=2025-10-09&end=2025-10-01", "range_reversed", "开始日期 2025-10-09 不能晚于结束日期 2025-10-01",
     "start 2025-10-09 must not be after end 2025-10-01"),
    ("?start=2024-01-01&end=2025-02-04", "range_too_long", "日期范围不能超过400天（当前 401 天）",
     "The range must be at most 400 days (got 401)"),
])
def test_a_bad_range_is_a_400_naming_the_rule(http, query, code, zh, en):
    answer = http.get(DATES + query)
    assert answer.status_code == 400
    assert answer.json_body == {"status": "error", "code": code, "message": zh}
    english = http.get(DATES + query + "&lang=en")
    assert english.json_body["message"] == en


def test_the_longest_range_is_accepted(http):
    answer = get_dates(http, "2024-01-01", "2025-02-03")
    assert len(answer.json_body["data"]["dates"]) == 400


def test_state_precedence_without_a_database():
    def row(**fields: Any) -> dict[str, Any]:
        base = {"day": date(2025, 10, 9), "synced_rows": None, "synced_at": None, "is_open": None,
                "task_id": None, "job_status": None, "skip_reason": None, "error": None,
                "rows_written": None}
        return {**base, **fields}
    assert state_of(row()).state == "not_synced"
    assert state_of(row(day=date(2025, 10, 11))).state == "non_trading"  # a Saturday
    assert state_of(row(day=date(2025, 10, 11), is_open=True)).state == "not_synced"  # the calendar wins
    assert state_of(row(is_open=False, job_status="failed")).state == "non_trading"
    skipped = state_of(row(job_status="skipped", skip_reason="non_trading_day"))
    assert (skipped.state, skipped.trading) == ("non_trading", False)
    assert state_of(row(synced_rows=10, job_status="failed", error="x")).state == "synced"
    assert state_of(row(synced_rows=10, job_status="pending")).state == "pending"
    assert state_of(row(is_open=True, job_status="skipped", skip_reason="cancelled")).state == "skipped"
    assert set(STATES) == {"synced", "failed", "skipped", "non_trading", "not_synced", "pending", "running"}
