"""daily_bars at size: writes and reads on an empty table and on years of history, against the limit.

For each size (0, then `scale` rows preloaded by COPY: bench/history.py) the same
measurements, on `daily_bars` as migrated, with stocksync's own code and queries:

- new day: `chalicelib.store.write_daily_bars` of a day not stored yet (~5,300 rows,
  the DataFrame `TushareSource.daily` returns), DataFrame to commit;
- new day, first write after a CHECKPOINT: the same, each right after a checkpoint
  (the first change to each page after a checkpoint writes the whole page to the WAL);
- re-sync: `write_daily_bars` of a stored day with the values it holds (a forced
  re-sync of unchanged data); and with every close changed (all rows rewritten);
- the limit: a binary COPY of ready-made input (no conversion) into an UNLOGGED table
  with no keys, holding the same history; also right after a checkpoint, the first
  write after a checkpoint's own yardstick;
- series: one stock's whole history through `daily_bars_series` (the query named
  `daily_bars_series`), a different stock each time (its first read: its pages are rarely
  in shared_buffers), then the same stock again;
- cross-section: every stock of one stored day (`daily_bars_cross_section`);
- both fetched by psycopg2 (what a Python caller waits for) and, on other stocks and
  days, as the database's own planning and execution time (EXPLAIN ANALYZE);
- sizes of the table and its key, and of the keyless table.

Writes take turns within each round, so drift hits them alike; medians.
"""
from __future__ import annotations

import io
import random
from datetime import date, timedelta
from typing import Any, Callable

from bench import history, synth
from bench.common import Timer, median, ms
from chalicelib.db import query

RAW_TABLE = "bench_raw_bars"
NEW_DAYS_FROM = date(2030, 1, 1)  # after every day the other groups write


def run(stack: Any, scale: float = 0, repeats: int = 10, reads: int = 12) -> dict[str, Any]:
    """Measure at 0 rows and, when `scale` > 0, again with `scale` rows of history."""
    import psycopg2

    from chalicelib.db import Database
    from bench.common import reset
    reset(stack)
    url = stack.env["DATABASE_URL"]
    db = Database(url, 1)
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
            cur.execute(f"CREATE UNLOGGED TABLE {RAW_TABLE} (LIKE daily_bars INCLUDING DEFAULTS)")
        conn.commit()
        sizes = [0] + ([scale] if scale else [])
        result: dict[str, Any] = {"scale": scale, "repeats": repeats, "sizes": []}
        new_days = _NewDays()
        for size in sizes:
            loaded = None
            if size:
                loaded = history.preload_bars(conn, size)
                _copy_history_into_raw(conn)
                history.analyze(conn)
            result["sizes"].append(_measure(db, conn, new_days, loaded, repeats, reads))
        return result
    finally:
        conn.close()
        with db.transaction() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        db.close()


class _NewDays:
    def __init__(self) -> None:
        self._next = NEW_DAYS_FROM

    def take(self) -> date:
        self._next += timedelta(days=1)
        return self._next


def _copy_history_into_raw(conn: Any) -> None:
    """The limit's table gets the same history, so both are measured at one size."""
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {RAW_TABLE} SELECT * FROM daily_bars")
    conn.commit()


def _checkpoint(conn: Any) -> None:
    conn.rollback()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("CHECKPOINT")
    finally:
        conn.autocommit = False


def _measure(db: Any, conn: Any, new_days: _NewDays, loaded: dict[str, Any] | None,
             repeats: int, reads: int) -> dict[str, Any]:
    from chalicelib.store import frame_to_copy, write_daily_bars
    codes = synth.codes()
    rng = random.Random(20251009)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM daily_bars")
        rows = cur.fetchone()[0]
    stored = synth.trading_days(loaded["days"]) if loaded else []
    copy_raw = f"COPY {RAW_TABLE} ({', '.join(history.COPY_COLUMNS)}) FROM STDIN WITH (FORMAT binary)"

    def project_new() -> Callable[[], None]:
        day = synth.frame(new_days.take(), codes)

        def write() -> None:
            with db.transaction() as cur:
                write_daily_bars(cur, day)
        return write

    def limit() -> Callable[[], None]:
        data = frame_to_copy(synth.frame(new_days.take(), codes))

        def write() -> None:
            with db.transaction() as cur:
                cur.copy_expert(copy_raw, io.BytesIO(data))
        return write

    def resync(shift: float) -> Callable[[], Callable[[], None]]:
        def prepare() -> Callable[[], None]:
            if stored:
                day = rng.choice(stored)
            else:  # an empty table: store a day first
                day = new_days.take()
                with db.transaction() as cur:
                    write_daily_bars(cur, synth.frame(day, codes))
            frame = synth.frame(day, codes, shift=shift)

            def write() -> None:
                with db.transaction() as cur:
                    write_daily_bars(cur, frame)
            return write
        return prepare

    def after_checkpoint(prepare: Callable[[], Callable[[], None]]) -> Callable[[], Callable[[], None]]:
        def prepared() -> Callable[[], None]:
            write = prepare()
            _checkpoint(conn)
            return write
        return prepared

    contenders: dict[str, Callable[[], Callable[[], None]]] = {
        "new": project_new, "limit": limit, "resync": resync(0.0), "resync_changed": resync(0.01),
        "new_after_checkpoint": after_checkpoint(project_new),
        "limit_after_checkpoint": after_checkpoint(limit),
    }
    for prepare in contenders.values():  # untimed: connections, the temp table, caches
        prepare()()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            write = contenders[name]()
            with Timer() as timer:
                write()
            times[name].append(timer.seconds)

    out: dict[str, Any] = {"rows": rows, "days": len(stored), "preload": loaded}
    for name, values in times.items():
        out[f"{name}_ms"] = ms(median(values))
    for name in ("new", "resync", "resync_changed"):
        out[f"x_{name}"] = round(out[f"{name}_ms"] / out["limit_ms"], 2)
    # Like with like: the first write after a checkpoint beside the limit's after one.
    out["x_new_after_checkpoint"] = round(out["new_after_checkpoint_ms"] / out["limit_after_checkpoint_ms"], 2)
    out.update(_reads(conn, codes, stored, rng, reads))
    out.update(_sizes(conn))
    return out


def _reads(conn: Any, codes: Any, stored: list[date], rng: random.Random, reads: int) -> dict[str, Any]:
    """Each read fetched by psycopg2 (what a Python caller waits for), and on other stocks
    and days, the database's own execution time (EXPLAIN ANALYZE: no transfer, no decoding)."""
    if not stored:
        return {}
    times: dict[str, list[float]] = {"series": [], "series_warm": [], "series_db": [],
                                     "cross_section": [], "cross_section_db": []}
    series_rows, section_rows = [], []
    stocks = rng.sample(range(len(codes)), 2 * reads)
    days = rng.sample(stored, min(2 * reads, len(stored)))
    with conn.cursor() as cur:
        for k in stocks[:reads]:
            params = {"ts_code": codes[k].decode(), "start": None, "end": None}
            for key in ("series", "series_warm"):
                with Timer() as timer:
                    cur.execute(query("daily_bars_series"), params)
                    fetched = cur.fetchall()
                times[key].append(timer.seconds)
            series_rows.append(len(fetched))
        for k in stocks[reads:]:
            times["series_db"].append(_executed(cur, query("daily_bars_series"),
                                                {"ts_code": codes[k].decode(), "start": None, "end": None}))
        for day in days[:len(days) // 2 or 1]:
            with Timer() as timer:
                cur.execute(query("daily_bars_cross_section"), {"day": day})
                fetched = cur.fetchall()
            times["cross_section"].append(timer.seconds)
            section_rows.append(len(fetched))
        for day in days[len(days) // 2:]:
            times["cross_section_db"].append(_executed(cur, query("daily_bars_cross_section"), {"day": day}))
    conn.rollback()
    out: dict[str, Any] = {f"{key}_ms": ms(median(values)) for key, values in times.items()}
    out.update({"series_rows": int(median(series_rows)), "series_reads": len(times["series"]),
                "cross_section_rows": int(median(section_rows))})
    return out


def _executed(cur: Any, sql: str, params: dict[str, Any]) -> float:
    cur.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql, params)
    plan = cur.fetchone()[0][0]
    return (plan["Planning Time"] + plan["Execution Time"]) / 1000


def _sizes(conn: Any) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute(f"""SELECT pg_table_size('daily_bars'), pg_indexes_size('daily_bars'),
                               pg_table_size('{RAW_TABLE}')""")
        table, indexes, raw = cur.fetchone()
    conn.rollback()
    mb = lambda b: round(b / 2**20, 1)  # noqa: E731
    return {"table_mb": mb(table), "key_mb": mb(indexes), "raw_table_mb": mb(raw)}
