"""Datasets per job on the local stack: three datasets end to end, a dataset the token may
not call, short days, the row-cap split, and today before the publish time."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from chalicelib.config import MARKET_TZ
from chalicelib.source import make_client
from tests.conftest import fetch_all, scalar

THREE = ["daily", "adj_factor", "daily_basic"]
DAYS = {"start_date": "2025-10-09", "end_date": "2025-10-10"}  # two trading days


@pytest.fixture
def tushare(stack):
    """The real tushare client on the sample server: what the source answers, to compare with."""
    return make_client(stack.env["TUSHARE_TOKEN"], stack.env["TUSHARE_API_URL"], timeout_s=10)


def start(api, body) -> str:
    response = api.start(body)
    assert response.status_code == 200, response.json_body
    return response.json_body["data"]["task_id"]


def dataset_rows(db, task_id):
    return {(r["day"], r["dataset"]): r for r in fetch_all(
        db, "SELECT day::text, dataset, status, skip_reason, attempts, rows_written, expected_rows, error "
            "FROM sync_job_day_datasets WHERE task_id = %(t)s", {"t": task_id})}


def stored(db, table, day):
    return fetch_all(db, f"SELECT * FROM {table} WHERE trade_date = %(d)s ORDER BY ts_code", {"d": day})


def test_three_datasets_sync_end_to_end_and_match_what_the_source_serves(api, db, workers, stack, tushare):
    task_id = start(api, {**DAYS, "datasets": THREE})
    final = workers.run_until_settled(task_id)
    assert (final["status"], final["success"], final["failed"], final["skipped"]) == ("completed", 2, 0, 0)
    assert list(final["datasets"]) == THREE
    assert all(final["datasets"][d]["success"] == 2 and final["datasets"][d]["failed"] == 0 for d in THREE)
    for day in ("20251009", "20251010"):
        iso = f"{day[:4]}-{day[4:6]}-{day[6:]}"
        for api_name, table in (("daily", "daily_bars"), ("adj_factor", "adj_factor"),
                                ("daily_basic", "daily_basic")):
            source = tushare.query(api_name, trade_date=day).sort_values("ts_code", ignore_index=True)
            rows = pd.DataFrame(stored(db, table, iso))
            assert len(rows) == len(source) > 4000
            assert rows["ts_code"].tolist() == source["ts_code"].tolist()
            for column in source.columns.drop(["ts_code", "trade_date"]):
                pd.testing.assert_series_equal(rows[column].astype(float), source[column].astype(float),
                                               check_names=False)
        # adj_factor covers every listed stock, suspended or not; daily only those that traded.
        listed = scalar(db, "SELECT count(*) FROM stock_basic WHERE list_date <= %(d)s "
                            "AND (delist_date IS NULL OR delist_date > %(d)s)", {"d": iso})
        suspended = scalar(db, "SELECT count(*) FROM suspend_d WHERE trade_date = %(d)s "
                               "AND suspend_type = 'S'", {"d": iso})
        assert scalar(db, "SELECT count(*) FROM adj_factor WHERE trade_date = %(d)s", {"d": iso}) == listed
        assert scalar(db, "SELECT count(*) FROM daily_bars WHERE trade_date = %(d)s", {"d": iso}) == listed - suspended
        assert suspended > 0
    # daily_basic's close is daily's, row for row.
    mismatched = scalar(db, "SELECT count(*) FROM daily_bars b JOIN daily_basic x USING (trade_date, ts_code) "
                            "WHERE b.close IS DISTINCT FROM x.close")
    assert mismatched == 0
    # Each (day, dataset) has its own row, with its count checked against the listings.
    rows = dataset_rows(db, task_id)
    assert len(rows) == 6 and {r["status"] for r in rows.values()} == {"success"}
    assert all(r["rows_written"] == r["expected_rows"] for r in rows.values())
    assert final["rows"] == sum(r["rows_written"] for r in rows.values())
    # The days list carries them too.
    days = api.days(task_id).json_body["data"]
    assert [d["dataset"] for d in days[0]["datasets"]] == sorted(THREE)
    # A second job finds each dataset already synced: nothing fetched again.
    calls = dict(stack.tushare.stats()["calls"])
    again = workers.run_until_settled(start(api, {**DAYS, "datasets": THREE}))
    assert (again["skipped"], again["skipped_by_reason"]["already_synced"]) == (2, 2)
    assert all(again["datasets"][d]["skipped"] == 2 for d in THREE)
    assert stack.tushare.stats()["calls"] == calls


def test_a_dataset_the_token_may_not_call_fails_its_days_with_tushares_words_and_the_others_succeed(
        api, db, workers, stack):
    stack.tushare.configure(denied_apis=["daily_basic"])
    task_id = start(api, {**DAYS, "datasets": THREE})
    final = workers.run_until_settled(task_id)
    assert final["status"] == "completed" and final["failed"] == 2  # a day fails if a dataset does
    assert final["datasets"]["daily"]["success"] == 2 and final["datasets"]["adj_factor"]["success"] == 2
    assert final["datasets"]["daily_basic"]["failed"] == 2
    rows = dataset_rows(db, task_id)
    errors = {r["error"] for (day, name), r in rows.items() if name == "daily_basic"}
    assert len(errors) == 1 and "没有访问该接口的权限" in errors.pop()
    # One refusal was enough: the second day did not ask again.
    assert stack.tushare.stats()["calls"]["daily_basic"] == 1
    assert scalar(db, "SELECT count(*) FROM daily_basic") == 0
    assert scalar(db, "SELECT count(*) FROM daily_bars") > 8000
    days = {d["day"]: d for d in api.days(task_id).json_body["data"]}
    assert "daily_basic" in days["2025-10-10"]["error"] and days["2025-10-10"]["status"] == "failed"


def test_a_short_day_is_retried_then_failed_with_both_counts_and_nothing_written(
        api, db, workers, stack, tushare):
    codes = tushare.query("daily", trade_date="20251009")["ts_code"].sort_values().tolist()[:2]
    stack.tushare.add_fault("drop", api="daily", trade_date="20251009", times=None, codes=codes)
    task_id = start(api, DAYS)
    final = workers.run_until_settled(task_id)
    assert (final["success"], final["failed"]) == (1, 1)
    row = dataset_rows(db, task_id)[("2025-10-09", "daily")]
    expected = row["expected_rows"]
    assert row["status"] == "failed" and row["attempts"] == 3  # MAX_ATTEMPTS in the tests
    assert f"expected {expected} rows (listed and not suspended), got {expected - 2}" in row["error"]
    assert all(code in row["error"] for code in codes) and "after 3 attempts" in row["error"]
    assert scalar(db, "SELECT count(*) FROM daily_bars WHERE trade_date = '2025-10-09'") == 0
    assert scalar(db, "SELECT count(*) FROM synced_dates WHERE dataset = 'daily' "
                      "AND trade_date = '2025-10-09'") == 0
    # The calendar marks it short, with both counts.
    dates = api._client.get("/api/v1/sync-status/dates?start=2025-10-09&end=2025-10-10").json_body["data"]
    first = dates["dates"][0]
    assert first["short"] is True and first["datasets"]["daily"]["state"] == "short"
    assert first["datasets"]["daily"]["expected"] == expected and dates["short_days"] == 1


def test_an_answer_at_the_row_cap_is_split_by_code_batches_when_the_server_does_not_page(
        api, db, workers, stack, tushare):
    whole = tushare.query("daily", trade_date="20251009")
    stack.tushare.reset_stats()
    stack.tushare.configure(row_caps={"daily": 1000}, ignore_offset=["daily"])
    task_id = start(api, {"start_date": "2025-10-09", "end_date": "2025-10-09"})
    final = workers.run_until_settled(task_id)
    assert final["success"] == 1, dataset_rows(db, task_id)
    rows = stored(db, "daily_bars", "2025-10-09")
    assert len(rows) == len(whole) > 1000
    assert sorted(r["ts_code"] for r in rows) == sorted(whole["ts_code"])
    # One page at the cap, one that showed the offset ignored, then batches under the cap.
    assert stack.tushare.stats()["calls"]["daily"] >= 2 + len(whole) // 1000


def test_a_small_row_cap_with_paging_reads_every_page(api, db, workers, stack, tushare):
    whole = tushare.query("daily", trade_date="20251009")
    stack.tushare.reset_stats()
    stack.tushare.configure(row_caps={"daily": 1000})
    final = workers.run_until_settled(start(api, {"start_date": "2025-10-09", "end_date": "2025-10-09"}))
    assert final["success"] == 1
    assert scalar(db, "SELECT count(*) FROM daily_bars") == len(whole)
    assert stack.tushare.stats()["calls"]["daily"] == -(-len(whole) // 1000)  # pages, no more


def latest_trading_day(tushare) -> date:
    today = datetime.now(MARKET_TZ).date()
    cal = tushare.query("trade_cal", exchange="SSE", start_date=(today - timedelta(days=20)).strftime("%Y%m%d"),
                        end_date=today.strftime("%Y%m%d"), is_open="1")
    return max(date.fromisoformat(f"{d[:4]}-{d[4:6]}-{d[6:]}") for d in cal["cal_date"])


def test_today_before_the_publish_time_is_skipped_not_published_yet_and_synced_by_a_later_job(
        api, db, workers, stack, app_module, tushare, monkeypatch):
    day = latest_trading_day(tushare)  # "today" in this test: a trading day, not after today
    morning = datetime(day.year, day.month, day.day, 10, 0, tzinfo=MARKET_TZ)
    stack.tushare.set_now(morning)  # tushare has nothing for the day yet either
    worker = app_module.get_worker()
    monkeypatch.setattr(worker, "_now", lambda: morning.timestamp())
    body = {"start_date": day.isoformat(), "end_date": day.isoformat(), "datasets": ["daily", "adj_factor"]}
    final = workers.run_until_settled(start(api, body))
    assert (final["skipped"], final["failed"]) == (1, 0)
    assert final["skipped_by_reason"]["not_published_yet"] == 1
    assert all(final["datasets"][d]["skipped"] == 1 for d in ("daily", "adj_factor"))
    assert scalar(db, "SELECT count(*) FROM synced_dates WHERE trade_date = %(d)s", {"d": day}) == 0
    assert stack.tushare.stats()["calls"].get("daily", 0) == 0  # not fetched
    dates = api._client.get(f"/api/v1/sync-status/dates?start={day}&end={day}").json_body["data"]
    assert dates["dates"][0]["skip_reason"] == "not_published_yet"
    # After the publish time the next job syncs it (nothing marked it synced).
    evening = morning + timedelta(hours=8)
    stack.tushare.set_now(evening)
    monkeypatch.setattr(worker, "_now", lambda: evening.timestamp())
    later = workers.run_until_settled(start(api, body))
    assert (later["success"], later["skipped"]) == (1, 0)
    assert scalar(db, "SELECT count(*) FROM daily_bars WHERE trade_date = %(d)s", {"d": day}) > 4000
