"""Smoke tests of the benchmarks: each group once at tiny sizes, on the session's stack.

They check the shape and the sanity of the results, never a duration: speed is
what `make bench` reports, not what a test asserts.
"""
from __future__ import annotations

import json

import pytest

from bench import run as bench_run

QUICK = bench_run.options(quick=True)


@pytest.fixture
def bench_stack(stack, app_module, db, monkeypatch):
    """The session's stack, emptied; the app imported with its environment; its operator
    token where the groups' requests (and their child processes) find it."""
    monkeypatch.setenv("STOCKSYNC_API_TOKEN", stack.api_token)
    return stack


def _positive(result: dict, *keys: str) -> None:
    for key in keys:
        assert isinstance(result[key], (int, float)) and result[key] > 0, (key, result[key])


def test_write_compares_the_project_path_with_the_limit_and_the_peers(bench_stack, db):
    from bench import write
    result = write.run(bench_stack, **QUICK["write"])
    assert result["rows"] > 4000 and result["repeats"] == 1
    _positive(result, "copy_upsert_ms", "raw_copy_ms", "raw_copy_binary_ms", "raw_copy_csv_ms",
              "keyed_copy_ms", "execute_values_ms", "to_sql_ms", "csv_stage_upsert_ms",
              "copy_upsert_resync_ms", "frame_to_copy_ms", "x_limit", "x_keyed_copy")
    assert result["raw_copy_ms"] == min(result["raw_copy_binary_ms"], result["raw_copy_csv_ms"])
    assert result["execute_values_page_size"] == 500
    # The group cleans up after itself.
    with db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM daily_bars")
        assert cur.fetchone()["n"] == 0
        cur.execute("SELECT to_regclass('bench_raw_bars') AS t")
        assert cur.fetchone()["t"] is None


def test_rows_for_execute_values_turn_nan_into_none():
    import math

    import pandas as pd

    from bench.write import rows_for_execute_values
    frame = pd.DataFrame({"ts_code": ["600000.SH"], "trade_date": ["20251009"], "open": [1.0],
                          "high": [2.0], "low": [0.5], "close": [1.5], "pre_close": [math.nan],
                          "change": [0.0], "pct_chg": [0.0], "vol": [10.0], "amount": [20.0]})
    assert rows_for_execute_values(frame) == [
        ("600000.SH", "20251009", 1.0, 2.0, 0.5, 1.5, None, 0.0, 0.0, 10.0, 20.0)]


def test_fetch_counts_calls_of_both_strategies(bench_stack):
    from bench import fetch
    result = fetch.run(bench_stack, **QUICK["fetch"])
    assert result["per_date_calls"] == 1  # ~5,300 rows fit one 6,000-row page
    assert result["per_date_complete"] is True  # as many rows as the listings said, in that call
    assert result["rows_per_day"] > 4000
    assert result["per_stock_sampled"] == 5 and result["per_stock_extrapolated"] is True
    assert result["per_stock_calls"] > result["rows_per_day"]  # stock_basic + one per listed symbol
    _positive(result, "per_date_wall_ms", "per_stock_wall_s", "per_stock_call_ms", "x_faster",
              "per_stock_quota_min")


def test_e2e_syncs_every_trading_day_of_the_range(bench_stack):
    from bench import e2e
    (result,) = e2e.run(bench_stack, **QUICK["e2e"])
    assert (result["workers"], result["days"], result["trading_days"]) == (1, 7, 3)
    assert result["rows"] > 3 * 4000
    assert len(result["runs_s"]) == 1
    _positive(result, "wall_s", "ms_per_trading_day")


def test_progress_pollers_report_latency_percentiles(bench_stack):
    from bench import progress
    result = progress.run(bench_stack, **QUICK["progress"])
    assert result["pollers"] == 3 and result["errors"] == 0 and result["requests"] >= 1
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert "saturated" not in result


def test_progress_poll_stops_when_the_job_is_not_running(bench_stack, api):
    from bench.progress import poll
    from devstack.progress_cli import start_job
    answer = start_job(bench_stack.api_url, "2025-10-04", "2025-10-05")  # a weekend
    task_id = answer["data"]["task_id"]
    api.cancel(task_id)
    polled = poll(bench_stack.api_url, task_id, pollers=2, interval_s=0.01, timeout_s=10)
    assert polled["errors"] == [] and 1 <= len(polled["latencies_s"]) <= 2


def test_memory_child_syncs_one_day_and_reports_its_peak(bench_stack):
    from bench import memory
    result = memory.run(bench_stack, **QUICK["memory"])
    assert result["rows"] > 4000
    assert 0 < result["after_import_mb"] <= result["peak_rss_mb"]


def test_scale_measures_writes_and_reads_empty_and_with_history_beside_the_limit(bench_stack, db):
    from bench import scale
    result = scale.run(bench_stack, **QUICK["scale"])
    empty, loaded = result["sizes"]
    assert empty["rows"] == 0 and loaded["rows"] >= QUICK["scale"]["scale"]
    assert loaded["days"] == 5 and loaded["preload"]["stocks"] == 5300
    for size in (empty, loaded):
        _positive(size, "new_ms", "new_after_checkpoint_ms", "resync_ms", "resync_changed_ms",
                  "limit_ms", "limit_after_checkpoint_ms", "x_new", "x_new_after_checkpoint",
                  "x_resync", "x_resync_changed", "table_mb", "key_mb", "raw_table_mb")
        assert size["x_new"] == round(size["new_ms"] / size["limit_ms"], 2)
    assert "series_ms" not in empty  # nothing stored to read
    _positive(loaded, "series_ms", "series_warm_ms", "series_db_ms", "cross_section_ms",
              "cross_section_db_ms")
    assert loaded["series_rows"] == 5 and loaded["cross_section_rows"] == 5300
    # The history stays for the reads group; the limit's table goes.
    with db.transaction() as cur:
        cur.execute("SELECT to_regclass('bench_raw_bars') AS t")
        assert cur.fetchone()["t"] is None
    # The reads group keeps that history and replaces only the jobs.
    from bench import reads
    prepared = reads._prepare(bench_stack, QUICK["scale"]["scale"], jobs=7)
    assert prepared["bars"]["reused"] is True and prepared["bars"]["rows"] >= QUICK["scale"]["scale"]
    assert prepared["jobs"]["jobs"] == 7


def test_reads_polls_every_route_over_an_ended_job_history(bench_stack, db):
    from bench import reads
    result = reads.run(bench_stack, **QUICK["reads"])
    assert (result["jobs"], result["job_day_rows"]) == (40, 40 * 90)
    assert result["errors"] == 0 and set(result["routes"]) == set(reads.ROUTES)
    for route in result["routes"].values():
        assert route["requests"] >= 1
        assert 0 < route["p50_ms"] <= route["p99_ms"] <= route["max_ms"]
        _positive(route, "in_process_ms")
    assert result["all"]["requests"] == sum(r["requests"] for r in result["routes"].values())
    assert set(result["queries"]) == {"recent_jobs", "date_states"}
    for timed in result["queries"].values():
        _positive(timed, "before_ms", "now_ms")


def test_reads_route_urls_ask_for_the_calendars_longest_range():
    from datetime import date

    from bench.reads import urls
    got = urls("http://x", "T", end=date(2025, 10, 31))
    assert got["dates"] == "http://x/api/v1/sync-status/dates?start=2024-09-27&end=2025-10-31"
    assert got["progress"].endswith("/sync/batch/progress/T") and got["days"].endswith("/days/T")


def _scale_size(rows: int, new: float, resync: float, after: float, series: float | None = None) -> dict:
    size = {"rows": rows, "days": rows // 5300, "new_ms": new * 4, "resync_ms": resync * 4,
            "resync_changed_ms": 80.0, "new_after_checkpoint_ms": after * 4, "limit_ms": 4.0,
            "limit_after_checkpoint_ms": 4.0, "x_new": new, "x_resync": resync,
            "x_resync_changed": 20.0, "x_new_after_checkpoint": after, "table_mb": 1.0,
            "key_mb": 0.5, "raw_table_mb": 1.0}
    if series is not None:
        size.update({"series_ms": series, "series_warm_ms": series / 2, "series_db_ms": series - 1,
                     "series_rows": 2470, "cross_section_ms": 8.0, "cross_section_db_ms": 2.0,
                     "cross_section_rows": 5300})
    return size


def test_scale_goals_take_the_worst_size_and_read_goals_need_the_goals_size():
    small = {"scale": {"sizes": [_scale_size(0, 2.0, 2.1, 2.2), _scale_size(1_000_000, 2.3, 2.6, 2.4, 9.0)]}}
    goals = bench_run.evaluate(small)
    assert goals["scale_write"]["met"] is False and goals["scale_write"]["value"].startswith("2.6x")
    assert goals["scale_checkpoint"]["met"] is True
    assert "scale_series" not in goals and "scale_cross_section" not in goals  # 1 M rows: not 13 M
    big = {"scale": {"sizes": [_scale_size(0, 2.0, 2.1, 2.2), _scale_size(13_000_000, 2.2, 2.3, 2.4, 16.0)]}}
    goals = bench_run.evaluate(big)
    assert goals["scale_write"]["met"] is True
    assert goals["scale_series"]["met"] is False and goals["scale_cross_section"]["met"] is True
    assert "scale_write" not in bench_run.evaluate({"scale": {"sizes": [_scale_size(0, 2.0, 2.0, 2.0)]}})
    text = bench_run.table(big)
    assert "| scale: daily_bars holding | 0 rows | 13,000,000 rows |" in text
    assert "8.00 ms (2.0x)" in text and "16.00 ms; 8.00 ms; 15.00 ms (2,470 days)" in text
    assert "8.00 ms; 2.00 ms (5,300 rows)" in text


def test_reads_goal_is_judged_on_the_slowest_route_at_50_pollers_and_10000_jobs():
    def reads(p99: dict[str, float], pollers: int = 50, jobs: int = 10_000, errors: int = 0) -> dict:
        routes = {name: {"requests": 100, "p50_ms": 2.0, "p99_ms": v, "max_ms": v + 1, "in_process_ms": 1.0}
                  for name, v in p99.items()}
        return {"reads": {"pollers": pollers, "interval_s": 0.25, "seconds": 8.0, "jobs": jobs,
                          "job_day_rows": jobs * 90, "bars": 13_000_000, "errors": errors,
                          "requests_per_s": 200.0, "all": {"p50_ms": 2.0, "p99_ms": 9.0}, "routes": routes}}
    fast = {"progress": 5.0, "days": 6.0, "jobs": 7.0, "dates": 12.0}
    assert bench_run.evaluate(reads(fast))["reads_p99"] == {
        "goal": bench_run.GOALS["reads_p99"][0], "value": "12.0 ms (dates; 13,000,000 bars)", "met": True}
    assert bench_run.evaluate(reads({**fast, "jobs": 25.0}))["reads_p99"]["met"] is False
    assert bench_run.evaluate(reads(fast, errors=1))["reads_p99"]["met"] is False
    assert "reads_p99" not in bench_run.evaluate(reads(fast, pollers=4))
    assert "reads_p99" not in bench_run.evaluate(reads(fast, jobs=40))
    assert "| reads | dates: p50" in bench_run.table(reads(fast))


@pytest.fixture
def fresh_database(stack):
    """A new, empty database on the session's server, dropped afterwards."""
    import uuid

    import psycopg2
    import psycopg2.extensions
    url = stack.env["DATABASE_URL"]
    name = f"stocksync_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield psycopg2.extensions.make_dsn(url, dbname=name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def test_the_schema_study_measures_each_candidate_beside_the_limit(fresh_database):
    import psycopg2

    from bench import schemas
    conn = psycopg2.connect(fresh_database)
    try:
        results = [schemas.measure(conn, schemas.CANDIDATES[name], rows=3 * 5300, repeats=2)
                   for name in ("date_key", "year_parts_code_key")]
    finally:
        conn.close()
    for result in results:
        assert result["rows"] > 3 * 5300  # the history and the days written meanwhile
        _positive(result, "new_ms", "limit_ms", "after_checkpoint_ms", "resync_merge_ms",
                  "resync_upsert_ms", "cross_section_ms", "table_mb", "x_new")
        # A stock's series: the 3 days of history and the new days written meanwhile.
        series = [result[k] for k in result if k.startswith("series_") and k.endswith("_rows")]
        assert series and all(rows > 3 for rows in series)
    assert set(results[0]["index_mb"]) == {"pkey"}
    assert "| partitioned by year, PK (ts_code" in schemas.table(results)


@pytest.mark.parametrize("prebuilt", [False, True])
def test_the_migration_bench_keeps_every_row_and_reports_its_locks(fresh_database, prebuilt):
    from bench import migration
    result = migration.measure(fresh_database, rows=2 * 5300, jobs=20, prebuilt=prebuilt)
    assert result["applied"] == [migration.TARGET]
    assert result["rows_kept"] is True and result["primary_key"] == ["trade_date", "ts_code"]
    assert result["rows_after"] == result["rows"] + result["rows_written_meanwhile"]
    assert ("prepare_s" in result) is prebuilt
    # Sampled every 20 ms: a migration this small may come and go unseen.
    assert result["migrate_s"] > 0 and isinstance(result["locks"], dict)


def _results() -> dict:
    return {
        "write": {"rows": 5000, "copy_upsert_ms": 18.0, "raw_copy_ms": 4.0, "raw_copy_binary_ms": 4.0,
                  "raw_copy_csv_ms": 8.0, "keyed_copy_ms": 16.0, "execute_values_ms": 120.0,
                  "to_sql_ms": 200.0, "csv_stage_upsert_ms": 60.0, "copy_upsert_resync_ms": 19.0,
                  "frame_to_copy_ms": 1.0, "execute_values_page_size": 500, "x_limit": 4.5,
                  "x_keyed_copy": 1.12, "x_faster_than_execute_values": 6.7, "x_faster_than_to_sql": 11.1},
        "e2e": [{"workers": 1, "days": 90, "trading_days": 59, "wall_s": 4.5, "rows": 300000,
                 "ms_per_trading_day": 76.0}],
        "progress": {"pollers": 50, "interval_s": 0.25, "requests": 1000, "requests_per_s": 200.0,
                     "errors": 0, "p50_ms": 3.0, "p99_ms": 12.0},
    }


def test_goals_are_judged_only_for_the_groups_present():
    goals = bench_run.evaluate(_results())
    assert goals["write_vs_limit"]["met"] is False  # 18 ms > 2.5 x 4 ms
    assert goals["write_vs_peers"]["met"] is True
    assert goals["e2e_under_10s"]["met"] is True and goals["progress_p99"]["met"] is True
    assert "memory_peak" not in goals


def test_table_lists_every_group_and_the_goals():
    text = bench_run.table(_results())
    assert "| write |" in text and "| e2e |" in text and "| progress |" in text
    assert "| **no** |" in text and "| fetch |" not in text


def test_results_merge_keeps_groups_not_run_and_the_readme_block_is_replaced(tmp_path):
    out = tmp_path / "results.json"
    bench_run.write_json(out, {"memory": {"peak_rss_mb": 100.0, "rows": 5000, "after_import_mb": 90.0}})
    merged = bench_run.merge(out, _results())
    assert merged["memory"]["peak_rss_mb"] == 100.0 and merged["write"]["copy_upsert_ms"] == 18.0
    assert merged["goals"]["memory_peak"]["met"] is True
    bench_run.write_json(out, merged)
    assert json.loads(out.read_text())["goals"] == merged["goals"]

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench_run.MARK_BEGIN}\nold\n{bench_run.MARK_END}\noutro\n")
    assert bench_run.update_readme(readme, merged)
    text = readme.read_text()
    assert "old" not in text and "| memory |" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")


def test_unknown_group_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench_run.main(["--only", "nope"])


def test_reads_can_poll_a_running_batch(bench_stack):
    from datetime import date

    from bench import reads
    result = reads.run(bench_stack, jobs=10, pollers=4, interval_s=0.05, seconds=1.0, live=True,
                       workers=1, days=3, end=date(2025, 10, 13))
    assert result["live"] is True and result["workers"] == 1 and result["errors"] == 0
    assert all(route["requests"] >= 1 for route in result["routes"].values())


def test_quota_workers_share_the_servers_limit_without_a_refusal(bench_stack):
    from bench import quota
    limits_before = bench_stack.tushare.config()["rate_limit_per_minute"]
    clock_before = bench_stack.tushare.clock
    result = quota.run(bench_stack, **QUICK["quota"])
    assert (result["workers"], result["trading_days"], result["limit_per_min"]) == (5, 9, 4)
    assert result["refused"] == 0 and result["refused_by_api"] == {}
    for dataset in ("daily", "adj_factor", "daily_basic", "suspend_d"):
        assert result["calls"][dataset] == 9  # one call a trading day each, none refused or repeated
    assert result["binding_api"] in ("daily", "adj_factor", "daily_basic", "suspend_d")
    for api, figures in result["per_api"].items():
        assert figures["busiest_window"] <= 4, api  # never more than the limit in a server minute
    assert 0 < result["utilisation"] <= 1
    assert result["max_attempts"] == 1  # waiting for the quota spends no attempt
    # The server's limits and clock are as they were.
    assert bench_stack.tushare.config()["rate_limit_per_minute"] == limits_before
    assert bench_stack.tushare.clock is clock_before


def test_quota_utilisation_is_the_rate_over_the_busy_interval_and_the_minute_after():
    from bench.quota import utilisation
    # Two calls a minute used perfectly: 2 at 0 s, 2 at 60 s, 1 at 120 s: 5 calls in
    # 120 s + 60 s, 1.67 a minute of the 2 allowed.
    got = utilisation([0.0, 0.5, 60.0, 60.5, 120.0], limit=2)
    assert (got["calls"], got["busy_s"], got["busiest_window"]) == (5, 120.0, 2)
    assert got["rate_per_min"] == 1.67 and got["utilisation"] == 0.833
    # Five calls all at once under a limit of 10: half of the allowed minute.
    assert utilisation([1.0] * 5, limit=10)["utilisation"] == 0.5
    assert utilisation([], limit=3) == {"calls": 0}


def test_quota_goal_is_judged_only_on_five_workers_and_a_90_day_three_dataset_job():
    def quota(workers: int = 5, days: int = 90, refused: int = 0, used: float = 0.93) -> dict:
        return {"quota": {"workers": workers, "days": days, "datasets": ["daily", "adj_factor", "daily_basic"],
                          "refused": refused, "utilisation": used, "limit_per_min": 10,
                          "binding_api": "daily", "speedup": 10.0}}
    assert bench_run.evaluate(quota())["quota"]["met"] is True
    assert bench_run.evaluate(quota())["quota"]["value"] == "0 refusals, 93.0% of 10/min (daily; clock x10)"
    assert bench_run.evaluate(quota(refused=1))["quota"]["met"] is False
    assert bench_run.evaluate(quota(used=0.89))["quota"]["met"] is False
    assert "quota" not in bench_run.evaluate(quota(days=21))
    assert "quota" not in bench_run.evaluate(quota(workers=1))
