"""Migration 006 at size: how long it takes, what it locks, and what waits meanwhile.

    python -m bench.migration --rows 13e6                # as a container would apply it
    python -m bench.migration --rows 13e6 --prebuilt     # the large-database procedure:
                                                         # its online steps first

A database in the schema before 006 (every other migration applied) on its own
embedded PostgreSQL gets `rows` bars (COPY in date order through the old key, as daily syncs
wrote them) and 10,000 ended jobs (~900,000 day rows); then `Database.migrate()`
applies 006 while three probes run on their own connections:

- a reader: one day's cross-section every 50 ms;
- a writer: a new day's binary COPY (its own transaction) every 250 ms;
- a lock sampler: every 20 ms, the locks granted on daily_bars and sync_job_days to
  other sessions than the probes, kept as (mode, first seen, last seen).

It reports the migration's duration, each lock's span, the longest wait of the reader
and of the writer, and checks that daily_bars holds exactly the rows it held before.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench import history, synth

TARGET = "006_bars_by_date"
# The large-database procedure of migration 006 (its header): online, before deploying.
PREPARE_006 = (
    'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS daily_bars_date_code '
    'ON daily_bars (trade_date, ts_code COLLATE "C")',
    "ALTER TABLE sync_job_days ADD COLUMN IF NOT EXISTS job_created_at timestamptz",
    "UPDATE sync_job_days d SET job_created_at = j.created_at FROM sync_jobs j "
    "WHERE j.task_id = d.task_id AND d.job_created_at IS NULL",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS sync_job_days_day_newest "
    "ON sync_job_days (day, job_created_at DESC, task_id DESC)",
)


def migrate_all_but(conn: Any, version: str) -> list[str]:
    """Apply every migration but `version` and record them, as `Database.migrate()`
    would have on a database deployed before `version` existed; returns their names."""
    from chalicelib.db import MIGRATIONS_DIR
    applied = []
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
            if path.stem == version:
                continue
            cur.execute(path.read_text(encoding="utf-8"))
            cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
            applied.append(path.stem)
    conn.commit()
    return applied


class Probes:
    """Reader, writer and lock sampler threads, each on its own connection."""

    def __init__(self, url: str, read_day: date):
        import psycopg2
        self._connect = lambda: psycopg2.connect(url, application_name="probe")
        self._read_day = read_day
        self._stop = threading.Event()
        self.reads: list[tuple[float, float]] = []  # (started, seconds)
        self.writes: list[tuple[float, float]] = []
        self.locks: dict[tuple[str, str], list[float]] = {}  # (table, mode) -> [first, last]
        self._threads = [threading.Thread(target=t, daemon=True)
                         for t in (self._reader, self._writer, self._sampler)]
        self._codes = synth.codes()
        self._next_day = date(2031, 1, 1)

    def __enter__(self) -> "Probes":
        for thread in self._threads:
            thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=600)

    def _loop(self, pause_s: float, work: Any, into: list[tuple[float, float]] | None) -> None:
        conn = self._connect()
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                work(conn)
                if into is not None:
                    into.append((began, time.monotonic() - began))
                self._stop.wait(pause_s)
        finally:
            conn.close()

    def _reader(self) -> None:
        def read(conn: Any) -> None:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM daily_bars WHERE trade_date = %s", (self._read_day,))
                cur.fetchone()
            conn.rollback()
        self._loop(0.05, read, self.reads)

    def _writer(self) -> None:
        def write(conn: Any) -> None:
            self._next_day += timedelta(days=1)
            ((_, data),) = synth.copy_chunks([self._next_day], self._codes)
            with conn.cursor() as cur:
                cur.copy_expert(history.COPY_BARS, io.BytesIO(data))
            conn.commit()
        self._loop(0.25, write, self.writes)

    def _sampler(self) -> None:
        def sample(conn: Any) -> None:
            now = time.monotonic()
            with conn.cursor() as cur:
                cur.execute("""SELECT c.relname, l.mode FROM pg_locks l
                               JOIN pg_class c ON c.oid = l.relation
                               JOIN pg_stat_activity a ON a.pid = l.pid
                               WHERE l.granted AND c.relname IN ('daily_bars', 'sync_job_days')
                                 AND l.database = (SELECT oid FROM pg_database
                                                   WHERE datname = current_database())
                                 AND a.application_name <> 'probe'""")
                for table, mode in cur.fetchall():
                    span = self.locks.setdefault((table, mode), [now, now])
                    span[1] = now
            conn.rollback()
        self._loop(0.02, sample, None)

    @staticmethod
    def longest(samples: list[tuple[float, float]], since: float) -> float:
        return max((s for began, s in samples if began + s >= since), default=0.0)


def run(rows: float, jobs: int = 10_000, prebuilt: bool = False) -> dict[str, Any]:
    """On a fresh embedded PostgreSQL of its own."""
    from devstack.services import EmbeddedPostgres
    with tempfile.TemporaryDirectory(prefix="stocksync-migration-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pgdata")
        url = postgres.start()
        try:
            return measure(url, rows, jobs, prebuilt)
        finally:
            postgres.stop()


def measure(url: str, rows: float, jobs: int = 10_000, prebuilt: bool = False) -> dict[str, Any]:
    """On an empty database at `url`: the old schema, the history, then migration 006."""
    import psycopg2

    from chalicelib.db import Database
    conn = psycopg2.connect(url)
    migrate_all_but(conn, TARGET)
    bars = history.preload_bars(conn, rows)
    job_rows = history.preload_jobs(conn, jobs)
    history.analyze(conn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CHECKPOINT")
        cur.execute("SELECT count(*) FROM daily_bars")
        before = cur.fetchone()[0]
    result: dict[str, Any] = {"rows": before, "bars_preload": bars, "jobs": job_rows,
                              "prebuilt": prebuilt}
    read_day = date.fromisoformat(bars["last"]) if bars["last"] else date(2025, 7, 31)
    with Probes(url, read_day) as probes:
        if prebuilt:
            began = time.monotonic()
            steps = []
            with conn.cursor() as cur:
                for statement in PREPARE_006:
                    step = time.monotonic()
                    cur.execute(statement)
                    steps.append(round(time.monotonic() - step, 2))
            result["prepare_s"] = steps
            result["prepare_longest_read_ms"] = round(1000 * Probes.longest(probes.reads, began), 1)
            result["prepare_longest_write_ms"] = round(1000 * Probes.longest(probes.writes, began), 1)
            probes.locks.clear()
            time.sleep(0.3)
        began = time.monotonic()
        db = Database(url, 1)
        applied = db.migrate()
        db.close()
        finished = time.monotonic()
        time.sleep(0.6)  # the writer's and reader's waits end after the commit
    result["applied"] = applied
    result["migrate_s"] = round(finished - began, 2)
    result["locks"] = {f"{table} {mode}": round(last - first, 2)
                       for (table, mode), (first, last) in sorted(probes.locks.items())}
    result["longest_read_ms"] = round(1000 * Probes.longest(probes.reads, began), 1)
    result["longest_write_ms"] = round(1000 * Probes.longest(probes.writes, began), 1)
    with conn.cursor() as cur:
        written = len(probes.writes) * len(synth.codes())
        cur.execute("SELECT count(*) FROM daily_bars")
        after = cur.fetchone()[0]
        cur.execute("""SELECT a.attname FROM pg_index i
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                       WHERE i.indrelid = 'daily_bars'::regclass AND i.indisprimary
                       ORDER BY array_position(i.indkey::int2[], a.attnum)""")
        key = [r[0] for r in cur.fetchall()]
    result["rows_after"] = after
    result["rows_written_meanwhile"] = written
    result["rows_kept"] = after == before + written
    result["primary_key"] = key
    conn.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--prebuilt", action="store_true",
                        help="build the new key with CREATE INDEX CONCURRENTLY before migrating")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.rows, args.jobs, args.prebuilt), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
