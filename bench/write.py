"""Writing one day of bars (~5,300 rows): stocksync's path against its peers and the limit.

Every contender starts from the DataFrame the source returns and ends with a
commit; each timed write is a trade date not stored yet, into `daily_bars`
already holding `prefill_days` days (as it would mid-backfill). Contenders take
turns within each round, so drift (autovacuum, checkpoints) hits them alike.

- copy_upsert: the project's `chalicelib.store.write_daily_bars`, DataFrame to
  commit (turning the frame into COPY input included);
- raw_copy: the limit: a plain COPY of ready-made input (no conversion) into an
  UNLOGGED table without keys or indexes; binary and CSV input both timed, the
  faster is the limit;
- execute_values: psycopg2's `execute_values`, page size 500, the same upsert;
- to_sql: pandas `DataFrame.to_sql` (SQLAlchemy, `if_exists="append"`): a plain
  INSERT, no upsert, which favours it;
- keyed_copy: a plain COPY of ready-made binary input into `daily_bars` itself
  (logged, with its primary key (trade_date, ts_code)): the floor for any path
  into this table; what separates it from raw_copy is maintaining the key and the WAL;
- csv_stage_upsert: the previous project path (pandas CSV, COPY into a staging
  table, INSERT ... ON CONFLICT), for before/after in the same run;
- copy_upsert_resync: the project's path again on a day already stored with the
  same values (a forced re-sync): the staged MERGE branch.
"""
from __future__ import annotations

import io
import math
import re
from datetime import date, timedelta
from typing import Any, Callable

import pandas as pd

from bench.common import SAMPLE_DAY, Timer, median, ms, reset, source
from chalicelib.db import query
from chalicelib.source import DAILY_FIELDS

COLUMNS = ", ".join(DAILY_FIELDS)
RAW_TABLE = "bench_raw_bars"
EXECUTE_VALUES_PAGE = 500
# The peer runs stocksync's own upsert (the concurrency-safe fallback of its re-sync),
# fed by VALUES instead of the staging table.
EXECUTE_VALUES_UPSERT = re.sub(r"SELECT [^\n]*\nFROM daily_bars_stage", "VALUES %s",
                               query("daily_bars_upsert_from_stage"))
assert "VALUES %s" in EXECUTE_VALUES_UPSERT


class _Dates:
    """A fresh trade date per write: far from the days the other groups sync."""

    def __init__(self) -> None:
        self._next = date(2001, 1, 1)

    def take(self) -> str:
        self._next += timedelta(days=1)
        return self._next.strftime("%Y%m%d")


def _on_day(frame: pd.DataFrame, trade_date: str) -> pd.DataFrame:
    day = frame.copy()
    day["trade_date"] = trade_date
    return day


def rows_for_execute_values(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The frame as tuples, NaN as None (NULL), as an execute_values user writes it."""
    rows = frame[list(DAILY_FIELDS)].astype(object).itertuples(index=False, name=None)
    return [tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row)
            for row in rows]


def run(stack: Any, repeats: int = 7, prefill_days: int = 20,
        frame: pd.DataFrame | None = None) -> dict[str, Any]:
    import psycopg2
    import sqlalchemy
    from psycopg2.extras import execute_values

    from chalicelib.db import Database, query
    from chalicelib.store import frame_to_copy, frame_to_csv, write_daily_bars

    reset(stack)
    if frame is None:
        frame = source(stack).daily(SAMPLE_DAY)
    url = stack.env["DATABASE_URL"]
    db = Database(url, 2)
    engine = sqlalchemy.create_engine("postgresql+psycopg2://", creator=lambda: psycopg2.connect(url),
                                      poolclass=sqlalchemy.pool.SingletonThreadPool)
    dates = _Dates()
    try:
        with db.transaction() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
            cur.execute(f"CREATE UNLOGGED TABLE {RAW_TABLE} (LIKE daily_bars)")
        for _ in range(prefill_days):
            with db.transaction() as cur:
                write_daily_bars(cur, _on_day(frame, dates.take()))

        raw_binary = frame_to_copy(_on_day(frame, dates.take()), encoding="utf_8")
        raw_csv = frame_to_csv(_on_day(frame, dates.take())).getvalue()

        def project() -> Callable[[], None]:
            day = _on_day(frame, dates.take())

            def write() -> None:
                with db.transaction() as cur:
                    write_daily_bars(cur, day)
            return write

        def project_resync() -> Callable[[], None]:
            day = _on_day(frame, dates.take())
            with db.transaction() as cur:
                write_daily_bars(cur, day)

            def write() -> None:
                with db.transaction() as cur:
                    write_daily_bars(cur, day.copy())
            return write

        def previous_path() -> Callable[[], None]:
            day = _on_day(frame, dates.take())

            def write() -> None:
                with db.transaction() as cur:
                    cur.execute(query("daily_bars_stage_create"))
                    cur.copy_expert(query("daily_bars_stage_copy_csv"), frame_to_csv(day))
                    cur.execute(query("daily_bars_upsert_from_stage"))
            return write

        def raw(data: bytes | str, fmt: str) -> Callable[[], Callable[[], None]]:
            def prepare() -> Callable[[], None]:
                with db.transaction() as cur:
                    cur.execute(f"TRUNCATE {RAW_TABLE}")
                stream = io.BytesIO(data) if isinstance(data, bytes) else io.StringIO(data)

                def write() -> None:
                    with db.transaction() as cur:
                        cur.copy_expert(f"COPY {RAW_TABLE} ({COLUMNS}) FROM STDIN WITH (FORMAT {fmt})",
                                        stream)
                return write
            return prepare

        def keyed() -> Callable[[], None]:
            data = frame_to_copy(_on_day(frame, dates.take()), encoding="utf_8")

            def write() -> None:
                with db.transaction() as cur:
                    cur.copy_expert(query("daily_bars_copy_new"), io.BytesIO(data))
            return write

        def values() -> Callable[[], None]:
            day = _on_day(frame, dates.take())

            def write() -> None:
                with db.transaction() as cur:
                    execute_values(cur, EXECUTE_VALUES_UPSERT, rows_for_execute_values(day),
                                   page_size=EXECUTE_VALUES_PAGE)
            return write

        def to_sql() -> Callable[[], None]:
            day = _on_day(frame, dates.take())

            def write() -> None:
                with engine.begin() as conn:
                    day.to_sql("daily_bars", conn, if_exists="append", index=False)
            return write

        # name -> prepare(): sets up one write (untimed) and returns it (timed).
        contenders: dict[str, Callable[[], Callable[[], None]]] = {
            "copy_upsert": project, "raw_copy_binary": raw(raw_binary, "binary"),
            "raw_copy_csv": raw(raw_csv, "csv"), "keyed_copy": keyed, "execute_values": values,
            "to_sql": to_sql, "csv_stage_upsert": previous_path, "copy_upsert_resync": project_resync,
        }
        # One untimed round: connections, the temp table, SQLAlchemy's reflection caches.
        for prepare in contenders.values():
            prepare()()
        times: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for round_ in range(repeats):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                write = contenders[name]()
                with Timer() as timer:
                    write()
                times[name].append(timer.seconds)

        conversions = []
        for _ in range(repeats):
            with Timer() as timer:
                frame_to_copy(frame, encoding="utf_8")
            conversions.append(timer.seconds)
    finally:
        try:
            with db.transaction() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
                cur.execute("TRUNCATE daily_bars")
        finally:
            db.close()
            engine.dispose()

    result: dict[str, Any] = {"rows": int(len(frame)), "repeats": repeats,
                              "prefill_days": prefill_days}
    for name, values_s in times.items():
        result[f"{name}_ms"] = ms(median(values_s))
    result["raw_copy_ms"] = min(result["raw_copy_binary_ms"], result["raw_copy_csv_ms"])
    result["frame_to_copy_ms"] = ms(median(conversions))
    result["execute_values_page_size"] = EXECUTE_VALUES_PAGE
    result["x_limit"] = round(result["copy_upsert_ms"] / result["raw_copy_ms"], 2)
    result["x_keyed_copy"] = round(result["copy_upsert_ms"] / result["keyed_copy_ms"], 2)
    result["x_faster_than_execute_values"] = round(result["execute_values_ms"] / result["copy_upsert_ms"], 1)
    result["x_faster_than_to_sql"] = round(result["to_sql_ms"] / result["copy_upsert_ms"], 1)
    return result
