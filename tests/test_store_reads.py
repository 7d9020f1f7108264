"""The read path over a job history: the job list and the calendar answer exactly what
aggregating every job's days answered, while touching only what they show."""
from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from bench import history
from chalicelib.db import query
from tests.conftest import fetch_all

from bench.reads import DATE_STATES_BEFORE, RECENT_JOBS_BEFORE


@pytest.fixture
def job_history(db: Any, stack: Any) -> Any:
    """60 ended jobs of 90 days over overlapping ranges, some days failed, one job with no days."""
    import psycopg2
    conn = psycopg2.connect(stack.env["DATABASE_URL"])
    try:
        history.preload_jobs(conn, 60, first=date(2024, 1, 1), last=date(2024, 9, 30))
        with conn.cursor() as cur:
            cur.execute("""UPDATE sync_job_days SET status = 'failed', error = 'HTTP 502', rows_written = 0
                           WHERE extract(day FROM day)::int % 7 = 3 AND task_id IN (
                               SELECT task_id FROM sync_jobs ORDER BY created_at DESC LIMIT 30)""")
            cur.execute("""INSERT INTO sync_jobs (task_id, start_date, end_date, status, created_at)
                           VALUES ('2024-01-01_2024-01-02_1', '2024-01-01', '2024-01-02', 'cancelled',
                                   now() - interval '30 minutes')""")
        conn.commit()
    finally:
        conn.close()
    return db


def test_the_job_list_counts_what_the_aggregate_over_every_job_counted(job_history, api, app_module):
    started = api.start({"start_date": "2025-10-01", "end_date": "2025-10-09"}).json_body["data"]
    expected = fetch_all(job_history, RECENT_JOBS_BEFORE, {"limit": 20})
    got = fetch_all(job_history, query("recent_jobs"), {"limit": 20})
    assert got == expected
    assert [list(row) for row in got] == [list(row) for row in expected]  # same columns, same order
    assert got[0]["task_id"] == started["task_id"] and got[0]["total"] == 9
    assert got[1]["task_id"] == "2024-01-01_2024-01-02_1" and got[1]["total"] == 0 and got[1]["rows"] == 0
    assert {row["failed"] > 0 for row in got} == {True, False}
    # And through the service the route uses, as JSON.
    listed = app_module.get_jobs().recent()
    assert [job["task_id"] for job in listed] == [row["task_id"] for row in expected]


def test_the_job_list_does_not_read_the_days_of_jobs_it_does_not_show(job_history):
    plan = "\n".join(row["QUERY PLAN"] for row in fetch_all(
        job_history, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + query("recent_jobs"),
        {"limit": 5}))
    # The day rows are read once per listed job (5 loops of ~90 rows), never all 5,400.
    assert "loops=5" in plan and "rows=5400" not in plan


@pytest.mark.parametrize("start, end", [("2023-12-01", "2024-12-31"), ("2024-03-01", "2024-03-31"),
                                        ("2030-01-01", "2030-02-01")])
def test_the_calendar_finds_the_newest_job_of_each_date_as_before(job_history, start, end):
    params = {"start": date.fromisoformat(start), "end": date.fromisoformat(end), "exchange": "SSE"}
    expected = fetch_all(job_history, DATE_STATES_BEFORE, params)
    assert fetch_all(job_history, query("date_states"), params) == expected


def test_the_calendars_json_is_what_asdict_would_build(job_history):
    from dataclasses import asdict

    from chalicelib.dates import DateRange, DateStates
    report = DateStates(job_history).report(DateRange(date(2024, 1, 1), date(2024, 2, 4)),
                                            date(2025, 10, 31), 400)
    assert report.as_json() == asdict(report)
    assert len(report.as_json()["dates"]) == 35 and report.as_json()["counts"] == report.counts


def test_the_apps_import_time_objects_are_frozen_out_of_the_collectors_walk(app_module):
    import gc
    assert gc.get_freeze_count() > 10_000
