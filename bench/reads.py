"""Every read route under 50 pollers, with years of job history and of bars behind them.

The history: `jobs` ended jobs of 90 days (10,000: ~900,000 day rows, bench/history.py)
and, with `scale`, that many bars (kept from the `scale` group when it already loaded
them). Then `pollers` threads (in a child process, as in bench/progress.py) each GET one
route every `interval_s` for `seconds`:

- progress: `GET .../sync/batch/progress/<the newest job>`
- days: `GET .../sync/batch/days/<the newest job>`
- jobs: `GET .../sync/batch/jobs` (the newest twenty, with their counts)
- dates: `GET /api/v1/sync-status/dates` over 400 days (the calendar's longest range)

Poller i polls route i mod 4. The job list's and the calendar's queries are also timed in
the database against the queries they replaced (median of 5). Latencies are the client's, through `chalice local`
(one process, a thread per connection, on the same two cores as everything else).
Beside them, each route's service call in this process without HTTP (median of 20).
With `live`, a 90-day batch runs meanwhile (2 worker threads in this process, the
sample server too) and the pollers watch it; the `progress` group measures that case.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from typing import Any

import requests

from bench import history, synth
from bench.common import BATCH, ROOT, auth, median, percentile, reset
from bench.e2e import DAYS, END, start_workers

# The read queries before issue 11 (the tests' references too): each aggregated or sorted
# every job's days. Issue 12's columns (datasets and kind; each date's datasets) are added
# in their plainest form, so a reference still computes what the fast query must.
RECENT_JOBS_BEFORE = """
SELECT j.task_id, j.status, j.start_date, j.end_date, j.force, j.message,
       j.created_at, j.finished_at, j.created_by, j.cancelled_by, j.paused_at, j.retries,
       j.datasets, j.kind,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('kind', e.kind, 'actor', e.actor, 'at', e.at,
                                                     'detail', e.detail) ORDER BY e.id), '[]'::jsonb)
        FROM sync_job_events e WHERE e.task_id = j.task_id) AS events,
       count(d.day) AS total,
       count(d.day) FILTER (WHERE d.status = 'success') AS success,
       count(d.day) FILTER (WHERE d.status = 'failed') AS failed,
       count(d.day) FILTER (WHERE d.status = 'skipped') AS skipped,
       coalesce(sum(d.rows_written), 0) AS rows
FROM sync_jobs j
LEFT JOIN sync_job_days d ON d.task_id = j.task_id
GROUP BY j.task_id
ORDER BY j.created_at DESC
LIMIT %(limit)s
"""
DATE_STATES_BEFORE = """
WITH latest AS (
    SELECT DISTINCT ON (d.day) d.day, d.task_id, d.status, d.skip_reason, d.error, d.rows_written
    FROM sync_job_days d
    JOIN sync_jobs j ON j.task_id = d.task_id
    WHERE d.day BETWEEN %(start)s::date AND %(end)s::date
    ORDER BY d.day, j.created_at DESC, d.task_id DESC
)
SELECT g.day::date AS day, s.rows AS synced_rows, s.synced_at, c.is_open,
       l.task_id, l.status AS job_status, l.skip_reason, l.error, l.rows_written,
       (SELECT jsonb_object_agg(x.dataset, jsonb_build_array(x.rows, x.expected_rows))
        FROM synced_dates x WHERE x.trade_date = g.day::date) AS synced,
       (SELECT jsonb_object_agg(y.dataset, jsonb_build_object(
                   'status', y.status, 'skip_reason', y.skip_reason, 'rows', y.rows_written,
                   'expected', y.expected_rows, 'error', y.error))
        FROM sync_job_day_datasets y WHERE y.task_id = l.task_id AND y.day = g.day::date) AS job_datasets
FROM generate_series(%(start)s::date, %(end)s::date, interval '1 day') AS g(day)
LEFT JOIN synced_dates s ON s.dataset = 'daily' AND s.trade_date = g.day::date
LEFT JOIN trade_calendar c ON c.exchange = %(exchange)s AND c.cal_date = g.day::date
LEFT JOIN latest l ON l.day = g.day::date
ORDER BY g.day
"""

ROUTES = ("progress", "days", "jobs", "dates")
DATES = "/api/v1/sync-status/dates"
DATES_DAYS = 400


def urls(api_url: str, task_id: str, end: date = END) -> dict[str, str]:
    start = end - timedelta(days=DATES_DAYS - 1)
    return {"progress": f"{api_url}{BATCH}/progress/{task_id}",
            "days": f"{api_url}{BATCH}/days/{task_id}",
            "jobs": f"{api_url}{BATCH}/jobs",
            "dates": f"{api_url}{DATES}?start={start.isoformat()}&end={end.isoformat()}"}


def poll(route_urls: dict[str, str], pollers: int, interval_s: float,
         seconds: float) -> dict[str, Any]:
    """`pollers` threads, poller i on route i mod 4, for `seconds`: latencies by route."""
    latencies: dict[str, list[float]] = {route: [] for route in ROUTES}
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(pollers)
    headers = auth()

    def poller(index: int) -> None:
        route = ROUTES[index % len(ROUTES)]
        url = route_urls[route]
        mine: list[float] = []
        with requests.Session() as http:
            http.headers.update(headers)
            barrier.wait()
            began = time.monotonic()
            due = began + random.Random(index).uniform(0, interval_s)
            while time.monotonic() < began + seconds:
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                started = time.perf_counter()
                try:
                    answer = http.get(url, timeout=30)
                    elapsed = time.perf_counter() - started
                    if answer.status_code == 200 and answer.json()["status"] == "success":
                        mine.append(elapsed)
                    else:
                        with lock:
                            errors.append(f"{route}: HTTP {answer.status_code}")
                except requests.RequestException as exc:
                    with lock:
                        errors.append(f"{route}: {type(exc).__name__}")
                due = max(due + interval_s, time.monotonic() - interval_s)
        with lock:
            latencies[route].extend(mine)

    threads = [threading.Thread(target=poller, args=(i,), daemon=True) for i in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies_s": latencies, "errors": errors, "seconds": seconds}


def _poll_in_child(route_urls: dict[str, str], pollers: int, interval_s: float,
                   seconds: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.reads", "--child", "--urls", json.dumps(route_urls),
               "--pollers", str(pollers), "--interval", str(interval_s), "--seconds", str(seconds)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"read pollers failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _stats(values: list[float]) -> dict[str, Any]:
    return {"requests": len(values), "p50_ms": round(1000 * median(values), 2),
            "p99_ms": round(1000 * percentile(values, 99), 2),
            "max_ms": round(1000 * max(values), 2) if values else None}


def _prepare(stack: Any, scale: float, jobs: int) -> dict[str, Any]:
    """Bars at `scale` (reused when the table holds them already) and `jobs` ended jobs."""
    import psycopg2
    conn = psycopg2.connect(stack.env["DATABASE_URL"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM daily_bars WHERE trade_date <= %s",
                        (synth.HISTORY_END,))
            held = cur.fetchone()[0]
        conn.commit()
        bars: dict[str, Any] = {"rows": held, "reused": True}
        if not scale or held < 0.95 * scale:
            reset(stack)
            bars = {"rows": 0, "reused": False}
            if scale:
                bars = {**history.preload_bars(conn, scale), "reused": False}
        else:
            with conn.cursor() as cur:
                cur.execute("TRUNCATE sync_jobs, sync_job_days CASCADE")  # and whatever refers to jobs
            conn.commit()
        loaded = history.preload_jobs(conn, jobs)
        history.analyze(conn)
        return {"bars": bars, "jobs": loaded}
    finally:
        conn.close()


def _queries_before_and_now(stack: Any, end: date) -> dict[str, dict[str, float]]:
    import psycopg2

    from chalicelib.db import query
    from chalicelib.source import EXCHANGE
    dates = {"start": end - timedelta(days=DATES_DAYS - 1), "end": end, "exchange": EXCHANGE}
    pairs = {"recent_jobs": (RECENT_JOBS_BEFORE, query("recent_jobs"), {"limit": 20}),
             "date_states": (DATE_STATES_BEFORE, query("date_states"), dates)}
    conn = psycopg2.connect(stack.env["DATABASE_URL"])
    out: dict[str, dict[str, float]] = {}
    try:
        with conn.cursor() as cur:
            for name, (before, now, params) in pairs.items():
                times: dict[str, list[float]] = {"before_ms": [], "now_ms": []}
                for _ in range(5):
                    for key, sql in (("before_ms", before), ("now_ms", now)):
                        began = time.perf_counter()
                        cur.execute(sql, params)
                        cur.fetchall()
                        times[key].append(time.perf_counter() - began)
                out[name] = {key: round(1000 * median(values), 2) for key, values in times.items()}
        conn.rollback()
    finally:
        conn.close()
    return out


def _newest_job(stack: Any) -> str:
    import psycopg2
    conn = psycopg2.connect(stack.env["DATABASE_URL"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT task_id FROM sync_jobs ORDER BY created_at DESC LIMIT 1")
            return cur.fetchone()[0]
    finally:
        conn.close()


def _in_process(stack: Any, task_id: str, end: date) -> dict[str, float]:
    """Each route's service call without HTTP: the database's share of the latency."""
    import app
    from chalicelib.dates import DateRange
    jobs, dates = app.get_jobs(), app.get_dates()
    start = end - timedelta(days=DATES_DAYS - 1)
    calls = {"progress": lambda: jobs.progress(task_id), "days": lambda: jobs.days(task_id),
             "jobs": lambda: jobs.recent(),
             "dates": lambda: dates.report(DateRange(start, end), end, DATES_DAYS)}
    out = {}
    for route, call in calls.items():
        times = []
        for _ in range(20):
            began = time.perf_counter()
            call()
            times.append(time.perf_counter() - began)
        out[route] = round(1000 * median(times), 2)
    return out


def run(stack: Any, scale: float = 0, jobs: int = 10_000, pollers: int = 50,
        interval_s: float = 0.25, seconds: float = 8.0, live: bool = False, workers: int = 2,
        end: date = END, days: int = DAYS) -> dict[str, Any]:
    prepared = _prepare(stack, scale, jobs)
    if live:
        start = end - timedelta(days=days - 1)
        loop = start_workers(stack, workers)
        try:
            answer = requests.post(stack.api_url + BATCH, timeout=30, headers=auth(), json={
                "start_date": start.isoformat(), "end_date": end.isoformat()})
            answer.raise_for_status()
            task_id = answer.json()["data"]["task_id"]
            polled = _poll_in_child(urls(stack.api_url, task_id, end), pollers, interval_s, seconds)
        finally:
            loop.stop()
        # A batch the polling outlasted is done; one it did not is stopped, as a user would.
        requests.post(f"{stack.api_url}{BATCH}/cancel/{task_id}", timeout=30, headers=auth())
    else:
        task_id = _newest_job(stack)
        polled = _poll_in_child(urls(stack.api_url, task_id, end), pollers, interval_s, seconds)
    in_process = _in_process(stack, task_id, end)
    queries = _queries_before_and_now(stack, end)
    every = [s for route in ROUTES for s in polled["latencies_s"][route]]
    result: dict[str, Any] = {
        "pollers": pollers, "interval_s": interval_s, "seconds": seconds, "live": live,
        "workers": workers if live else 0,
        "jobs": prepared["jobs"]["jobs"], "job_day_rows": prepared["jobs"]["day_rows"],
        "bars": prepared["bars"]["rows"], "dates_days": DATES_DAYS,
        "errors": len(polled["errors"]), "requests_per_s": round(len(every) / seconds, 1),
        "all": _stats(every),
        "routes": {route: {**_stats(polled["latencies_s"][route]), "in_process_ms": in_process[route]}
                   for route in ROUTES},
        "queries": queries, "preload": prepared,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="read-route pollers (the benchmark's child process)")
    parser.add_argument("--child", action="store_true", required=True)
    parser.add_argument("--urls", required=True)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    json.dump(poll(json.loads(args.urls), args.pollers, args.interval, args.seconds), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
