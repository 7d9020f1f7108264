"""Migration 006 on a database in the schema before it: every row kept exactly once,
bars keyed by (trade_date, ts_code), the job history's newest-job index filled in."""
from __future__ import annotations

import math
import uuid
from datetime import date
from typing import Any, Iterator

import psycopg2
import psycopg2.extensions
import pytest

from bench.migration import PREPARE_006, TARGET, migrate_all_but
from chalicelib.db import Database, query
from chalicelib.store import write_daily_bars
from tests.test_store_copy import frame

CODES = ["000001.SZ", "600000.SH", "830799.BJ", "688981.SH", "000002.SZ", "中文.SZ"]
DAYS = [date(2025, 9, 29), date(2025, 9, 30), date(2025, 10, 9), date(2025, 10, 10)]


@pytest.fixture
def old_database(stack: Any) -> Iterator[str]:
    """A new database on the session's server with every migration but 006 applied (a
    database deployed before this issue, with the later issues' tables too)."""
    url = stack.env["DATABASE_URL"]
    name = f"stocksync_m006_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    dsn = psycopg2.extensions.make_dsn(url, dbname=name)
    try:
        conn = psycopg2.connect(dsn)
        assert TARGET not in migrate_all_but(conn, TARGET)
        conn.close()
        yield dsn
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def rows(dsn: str, sql: str) -> list[tuple[str, ...]]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            # repr keeps every bit of a double and tells -0.0 from 0.0.
            return [tuple(repr(v) for v in row) for row in cur.fetchall()]
    finally:
        conn.close()


def one(dsn: str, sql: str, params: Any = None) -> Any:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()[0]
    finally:
        conn.close()


def fill_old_schema(dsn: str) -> None:
    """Bars as the old key (ts_code, trade_date) held them, jobs, their days, synced dates."""
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        for d, day in enumerate(DAYS):
            for c, code in enumerate(CODES):
                close = None if (c + d) % 5 == 0 else 10.0 + c + d / 100
                change = -0.0 if c == 2 else math.pi * d
                cur.execute("""INSERT INTO daily_bars (ts_code, trade_date, open, high, low, close,
                                   pre_close, change, pct_chg, vol, amount)
                               VALUES (%s, %s, 1.5, 2.5, 0.5, %s, 1.0, %s, 0.1, 1e9, 12345.678)""",
                            (code, day, close, change))
            cur.execute("INSERT INTO synced_dates (trade_date, rows, task_id) VALUES (%s, %s, 'new')",
                        (day, len(CODES)))
        cur.execute("""
            INSERT INTO sync_jobs (task_id, start_date, end_date, status, created_at) VALUES
              ('old', '2025-09-29', '2025-10-10', 'completed', now() - interval '2 hours'),
              ('new', '2025-09-30', '2025-10-09', 'completed', now() - interval '1 hour');
            INSERT INTO sync_job_days (task_id, day, status, rows_written)
            SELECT 'old', d::date, 'success', 6 FROM generate_series('2025-09-29'::date, '2025-10-10', '1 day') d;
            INSERT INTO sync_job_days (task_id, day, status, rows_written)
            SELECT 'new', d::date, 'failed', 0 FROM generate_series('2025-09-30'::date, '2025-10-09', '1 day') d;
        """)
    conn.commit()
    conn.close()


BARS = "SELECT * FROM daily_bars ORDER BY ts_code COLLATE \"C\", trade_date"
JOB_DAYS = ("SELECT task_id, day, status, skip_reason, attempts, rows_written, error "
            "FROM sync_job_days ORDER BY task_id, day")


def primary_key(dsn: str) -> list[str]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT a.attname FROM pg_index i
                           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                           WHERE i.indrelid = 'daily_bars'::regclass AND i.indisprimary
                           ORDER BY array_position(i.indkey::int2[], a.attnum)""")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def test_migration_keeps_every_bar_and_job_day_exactly_once_and_rekeys_by_date(old_database):
    fill_old_schema(old_database)
    bars_before = rows(old_database, BARS)
    days_before = rows(old_database, JOB_DAYS)
    assert primary_key(old_database) == ["ts_code", "trade_date"]
    assert len(bars_before) == len(CODES) * len(DAYS)

    db = Database(old_database, 1)
    applied = db.migrate()
    db.close()

    assert applied == [TARGET]
    assert rows(old_database, BARS) == bars_before
    assert one(old_database, "SELECT count(DISTINCT (trade_date, ts_code)) FROM daily_bars") == len(bars_before)
    assert rows(old_database, JOB_DAYS) == days_before
    assert primary_key(old_database) == ["trade_date", "ts_code"]
    # The key is the table's only index, and ts_code compares bytewise.
    assert one(old_database, "SELECT count(*) FROM pg_index WHERE indrelid = 'daily_bars'::regclass") == 1
    assert one(old_database, """SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
                                WHERE a.attrelid = 'daily_bars'::regclass AND a.attname = 'ts_code'""") == "C"
    # Each day row carries its job's created_at, the newest-job index's order.
    assert one(old_database, """SELECT count(*) FROM sync_job_days d JOIN sync_jobs j USING (task_id)
                                WHERE d.job_created_at IS DISTINCT FROM j.created_at""") == 0


def test_a_migrated_database_takes_writes_and_answers_the_reads(old_database):
    fill_old_schema(old_database)
    db = Database(old_database, 1)
    try:
        db.migrate()
        with db.transaction() as cur:
            write_daily_bars(cur, frame(3, trade_date="20251013"))   # a new day
        with db.transaction() as cur:
            write_daily_bars(cur, frame(3, trade_date="20251009", close=7.0))  # over a stored one
            # 600001.SH came with the re-sync; 10-13 is not among the synced dates yet.
            cur.execute(query("daily_bars_series"), {"ts_code": "600001.SH", "start": None, "end": None})
            assert [str(r["trade_date"]) for r in cur.fetchall()] == ["2025-10-09"]
            cur.execute("INSERT INTO synced_dates (trade_date, rows) VALUES ('2025-10-13', 3)")
            cur.execute(query("daily_bars_series"), {"ts_code": "600000.SH", "start": None, "end": None})
            series = cur.fetchall()
            cur.execute(query("date_states"), {"start": date(2025, 9, 29), "end": date(2025, 10, 10),
                                               "exchange": "SSE"})
            states = {row["day"]: row["task_id"] for row in cur.fetchall()}
        assert [str(r["trade_date"]) for r in series] == [
            "2025-09-29", "2025-09-30", "2025-10-09", "2025-10-10", "2025-10-13"]
        assert series[2]["close"] == 7.0 and series[0]["close"] == 11.0 and series[4]["close"] == 10.0
        # The newest job that included a day wins; only the older one had the ends of the range.
        assert states[date(2025, 9, 29)] == "old" and states[date(2025, 10, 10)] == "old"
        assert {states[date(2025, 9, 30)], states[date(2025, 10, 9)]} == {"new"}
        with db.transaction() as cur:  # a day row inserted after the migration gets its job's time
            cur.execute("INSERT INTO sync_job_days (task_id, day) VALUES ('old', '2025-10-11')")
            cur.execute("""SELECT d.job_created_at = j.created_at AS same FROM sync_job_days d
                           JOIN sync_jobs j USING (task_id) WHERE d.day = '2025-10-11'""")
            assert cur.fetchone()["same"] is True
    finally:
        db.close()


@pytest.mark.parametrize("valid", [True, False])
def test_the_online_preparation_is_used_and_an_invalid_index_rebuilt(old_database, valid):
    """The large-database procedure (006's header) run before deploying; an interrupted
    CONCURRENTLY build leaves its index INVALID, and the migration builds it again."""
    fill_old_schema(old_database)
    bars_before = rows(old_database, BARS)
    days_before = rows(old_database, JOB_DAYS)
    conn = psycopg2.connect(old_database)
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in PREPARE_006:
            cur.execute(statement)
        if not valid:
            cur.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid IN "
                        "('daily_bars_date_code'::regclass, 'sync_job_days_day_newest'::regclass)")
        cur.execute("SELECT relfilenode FROM pg_class WHERE relname = 'daily_bars_date_code'")
        built = cur.fetchone()[0]
        cur.execute("SELECT relfilenode FROM pg_class WHERE relname = 'sync_job_days_day_newest'")
        built_days = cur.fetchone()[0]
        # A job started between the preparation and the deploy: its day rows lack the column.
        cur.execute("""INSERT INTO sync_jobs (task_id, start_date, end_date, status)
                       VALUES ('late', '2025-10-09', '2025-10-10', 'running');
                       INSERT INTO sync_job_days (task_id, day) VALUES ('late', '2025-10-09'), ('late', '2025-10-10')""")
    conn.close()

    db = Database(old_database, 1)
    db.migrate()
    db.close()

    assert rows(old_database, BARS) == bars_before
    assert [row for row in rows(old_database, JOB_DAYS) if row[0] != "'late'"] == days_before
    assert primary_key(old_database) == ["trade_date", "ts_code"]
    key_file = one(old_database, "SELECT relfilenode FROM pg_class WHERE relname = 'daily_bars_pkey'")
    days_file = one(old_database, "SELECT relfilenode FROM pg_class WHERE relname = 'sync_job_days_day_newest'")
    # Used as built (the key not even rebuilt by the collation change), or built again.
    assert (key_file == built) is valid and (days_file == built_days) is valid
    assert one(old_database, "SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid IN "
                             "('daily_bars'::regclass, 'sync_job_days'::regclass)") is True
    assert one(old_database, """SELECT count(*) FROM sync_job_days d JOIN sync_jobs j USING (task_id)
                                WHERE d.job_created_at IS DISTINCT FROM j.created_at""") == 0


def test_a_worker_holding_a_day_row_and_writing_bars_does_not_deadlock_the_migration(old_database):
    """A worker's transaction locks its day row, then writes bars; the migration, started
    in between, waits for it (it locks the job days first), and both finish."""
    import threading
    import time
    fill_old_schema(old_database)
    worker = psycopg2.connect(old_database)
    outcome: dict[str, Any] = {}
    with worker.cursor() as cur:
        cur.execute("SELECT status FROM sync_job_days WHERE task_id = 'new' AND day = '2025-10-09' FOR UPDATE")

    def migrate() -> None:
        db = Database(old_database, 1)
        try:
            outcome["applied"] = db.migrate()
        except Exception as exc:  # noqa: BLE001 - the test reports what failed
            outcome["error"] = exc
        finally:
            db.close()
    thread = threading.Thread(target=migrate)
    thread.start()
    time.sleep(0.5)  # the migration is waiting now
    try:
        with worker.cursor() as cur:
            cur.execute("""INSERT INTO daily_bars (ts_code, trade_date, close)
                           VALUES ('600000.SH', '2025-10-13', 1.0)""")
            cur.execute("UPDATE sync_job_days SET status = 'success' WHERE task_id = 'new' AND day = '2025-10-09'")
        worker.commit()
    finally:
        worker.close()
        thread.join(timeout=60)
    assert "error" not in outcome and outcome["applied"] == [TARGET]
    assert one(old_database, "SELECT count(*) FROM daily_bars") == len(CODES) * len(DAYS) + 1
