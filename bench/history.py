"""Preloading years of history for the benchmarks at size: bars by COPY, jobs by generate_series.

- Bars: ~5,300 stocks a trading day over the exchange's sessions up to 2025-07-31
  (bench/synth.py), binary COPY in date order, 25 days a statement, straight into
  `daily_bars` with its key (as years of daily syncs would have left it), each date
  recorded in `synced_dates` and the calendar's years in `trade_calendar`.
- Jobs: `jobs` ended jobs of `days_per_job` days each (default 10,000 x 90: ~900,000 day
  rows), created one every 25 minutes up to an hour ago, over ranges spread across the
  history; weekdays succeeded, weekends skipped as non-trading, one job in 50 cancelled.
"""
from __future__ import annotations

import io
import time
from datetime import date
from typing import Any

from bench import synth

COPY_COLUMNS = ("ts_code", "trade_date", *synth.VALUE_FIELDS)
COPY_BARS = f"COPY daily_bars ({', '.join(COPY_COLUMNS)}) FROM STDIN WITH (FORMAT binary)"

INSERT_JOBS = """
INSERT INTO sync_jobs (task_id, start_date, end_date, force, status, message,
                       created_at, updated_at, finished_at)
SELECT format('%%s_%%s_%%s', x.start_date, x.start_date + %(span)s, 1700000000 + i * 1500),
       x.start_date, x.start_date + %(span)s, false,
       CASE WHEN i %% 50 = 0 THEN 'cancelled' ELSE 'completed' END,
       CASE WHEN i %% 50 = 0 THEN '批量同步已取消' ELSE '批量同步完成' END,
       x.created_at, x.created_at, x.created_at + interval '5 minutes'
FROM generate_series(1, %(jobs)s) AS i,
     LATERAL (SELECT %(first)s::date + (i * 7919) %% %(spread)s AS start_date,
                     now() - interval '1 hour' - (%(jobs)s - i) * interval '25 minutes' AS created_at) x
"""

INSERT_JOB_DAYS = """
INSERT INTO sync_job_days (task_id, day, status, skip_reason, attempts, rows_written,
                           enqueued_at, started_at, finished_at, enqueue_count)
SELECT j.task_id, g.day::date,
       CASE WHEN extract(isodow FROM g.day) > 5 THEN 'skipped' ELSE 'success' END,
       CASE WHEN extract(isodow FROM g.day) > 5 THEN 'non_trading_day' END,
       1, CASE WHEN extract(isodow FROM g.day) > 5 THEN 0 ELSE 5300 END,
       j.created_at, j.created_at, j.created_at + interval '1 minute', 1
FROM sync_jobs j, generate_series(j.start_date, j.end_date, interval '1 day') AS g(day)
"""


def preload_bars(conn: Any, rows: float, stocks: int = synth.STOCKS) -> dict[str, Any]:
    """COPY about `rows` bars of history into daily_bars; returns what was loaded."""
    codes = synth.codes(stocks)
    days = synth.trading_days(synth.days_for_rows(rows, len(codes)))
    began = time.perf_counter()
    for chunk, data in synth.copy_chunks(days, codes):
        with conn.cursor() as cur:
            cur.copy_expert(COPY_BARS, io.BytesIO(data))
            cur.executemany("INSERT INTO synced_dates (trade_date, rows, task_id) VALUES (%s, %s, NULL)",
                            [(d, len(codes)) for d in chunk])
        conn.commit()
    if days:
        _cache_calendar(conn, days[0].year, days[-1].year)
    seconds = time.perf_counter() - began
    return {"rows": len(days) * len(codes), "days": len(days), "stocks": len(codes),
            "first": days[0].isoformat() if days else None,
            "last": days[-1].isoformat() if days else None, "seconds": round(seconds, 1)}


def _cache_calendar(conn: Any, first_year: int, last_year: int) -> None:
    """The exchange calendar of the history's years, as the worker caches it."""
    import numpy as np

    from devstack.sample_data import default_market
    calendar = default_market().calendar
    table = calendar.days(np.datetime64(f"{first_year}-01-01"), np.datetime64(f"{last_year}-12-31"))
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE calendar_load (cal_date date, is_open boolean) ON COMMIT DROP")
        data = "".join(f"{d},{'t' if o else 'f'}\n"
                       for d, o in zip(table["cal_date"], table["is_open"]))
        cur.copy_expert("COPY calendar_load FROM STDIN WITH (FORMAT csv)", io.StringIO(data))
        cur.execute("INSERT INTO trade_calendar (exchange, cal_date, is_open) "
                    "SELECT 'SSE', cal_date, is_open FROM calendar_load "
                    "ON CONFLICT (exchange, cal_date) DO NOTHING")
    conn.commit()


def preload_jobs(conn: Any, jobs: int = 10_000, days_per_job: int = 90,
                 first: date = date(2015, 8, 1), last: date = synth.HISTORY_END) -> dict[str, Any]:
    """`jobs` ended jobs and their day rows; returns the counts."""
    began = time.perf_counter()
    spread = max(1, (last - first).days - days_per_job)
    with conn.cursor() as cur:
        cur.execute(INSERT_JOBS, {"jobs": jobs, "span": days_per_job - 1, "first": first,
                                  "spread": spread})
        cur.execute(INSERT_JOB_DAYS)
        day_rows = cur.rowcount
    conn.commit()
    return {"jobs": jobs, "day_rows": day_rows, "seconds": round(time.perf_counter() - began, 1)}


def analyze(conn: Any) -> None:
    """VACUUM ANALYZE, as autovacuum would have by then (visibility map and statistics)."""
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
    finally:
        conn.autocommit = autocommit
