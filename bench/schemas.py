"""The study that chose daily_bars' physical design: candidate schemas at a history size.

    python -m bench.schemas --rows 13e6                  # every candidate, ~2 min each
    python -m bench.schemas --rows 1e6 --only date_key,code_key

Each candidate gets a fresh table on its own embedded PostgreSQL 16 (pgserver's
defaults: 128 MB shared_buffers, as `make bench` runs), preloaded with `rows`
synthesized bars by binary COPY in date order (bench/synth.py), analysed and
checkpointed, then measured with the statements the app runs (medians):

- new day: `bars_dates_stored`, then one day's binary COPY, its own transaction;
- new day after a checkpoint: the same, right after a CHECKPOINT;
- re-sync: COPY into the staging table and the upsert, on a stored day (same values;
  and changed values: every close moved);
- series: one stock's whole history (the candidate's own query), a different stock
  each time, so its pages are not in shared_buffers from the previous read;
- cross-section: every stock of one stored day;
- sizes of the table and each index; the preload's duration;
- the limit: one day's binary COPY into an UNLOGGED table with no keys, beside the history.

Results print as a Markdown table and go to --out (JSON).
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

from bench import synth
from bench.common import median

VALUES = "open, high, low, close, pre_close, change, pct_chg, vol, amount"
COLUMNS = f"ts_code, trade_date, {VALUES}"
COLUMN_TYPES = """ts_code {code_type} NOT NULL, trade_date date NOT NULL,
    open double precision, high double precision, low double precision,
    close double precision, pre_close double precision, change double precision,
    pct_chg double precision, vol double precision, amount double precision"""

# A stock's series when the table leads with the code: one index range.
SERIES_BY_CODE = f"SELECT {COLUMNS} FROM daily_bars WHERE ts_code = %(code)s ORDER BY trade_date"
# When the key leads with the date: one index probe per stored date (a skip scan by
# hand: PostgreSQL 16 has none), the dates taken from synced_dates.
SERIES_BY_DATES = f"""SELECT {COLUMNS} FROM daily_bars
WHERE trade_date = ANY(ARRAY(SELECT trade_date FROM synced_dates)) AND ts_code = %(code)s
ORDER BY trade_date"""
# The same skip scan with the dates found in daily_bars itself (no list of dates needed).
SERIES_SKIP_SCAN = f"""WITH RECURSIVE days AS (
    SELECT min(trade_date) AS day FROM daily_bars
    UNION ALL
    SELECT (SELECT min(trade_date) FROM daily_bars WHERE trade_date > days.day)
    FROM days WHERE days.day IS NOT NULL)
SELECT b.ts_code, b.trade_date, b.open, b.high, b.low, b.close, b.pre_close, b.change,
       b.pct_chg, b.vol, b.amount
FROM days JOIN daily_bars b ON b.trade_date = days.day AND b.ts_code = %(code)s
ORDER BY b.trade_date"""
SET_VALUES = """open = s.open, high = s.high, low = s.low, close = s.close, pre_close = s.pre_close,
    change = s.change, pct_chg = s.pct_chg, vol = s.vol, amount = s.amount"""
DISTINCT_VALUES = """(b.open, b.high, b.low, b.close, b.pre_close, b.change, b.pct_chg, b.vol, b.amount)
      IS DISTINCT FROM
      (s.open, s.high, s.low, s.close, s.pre_close, s.change, s.pct_chg, s.vol, s.amount)"""
# Re-sync strategies: staged rows into the stored day.
CROSS_SECTION = f"SELECT {COLUMNS} FROM daily_bars WHERE trade_date = %(day)s ORDER BY ts_code"
UPSERT = f"""INSERT INTO daily_bars AS b ({COLUMNS})
SELECT {COLUMNS} FROM daily_bars_stage
ON CONFLICT (ts_code, trade_date) DO UPDATE
SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    pre_close = EXCLUDED.pre_close, change = EXCLUDED.change, pct_chg = EXCLUDED.pct_chg,
    vol = EXCLUDED.vol, amount = EXCLUDED.amount
WHERE (b.open, b.high, b.low, b.close, b.pre_close, b.change, b.pct_chg, b.vol, b.amount)
      IS DISTINCT FROM
      (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.pre_close,
       EXCLUDED.change, EXCLUDED.pct_chg, EXCLUDED.vol, EXCLUDED.amount)"""


RESYNC = {
    "upsert": [UPSERT],
    "merge": [f"""MERGE INTO daily_bars b
USING daily_bars_stage s
ON b.trade_date = s.trade_date AND b.ts_code = s.ts_code AND b.trade_date = ANY(%(dates)s::date[])
WHEN MATCHED AND {DISTINCT_VALUES} THEN UPDATE SET {SET_VALUES}
WHEN NOT MATCHED THEN INSERT ({COLUMNS}) VALUES (s.ts_code, s.trade_date, s.open, s.high, s.low,
    s.close, s.pre_close, s.change, s.pct_chg, s.vol, s.amount)"""],
    "update_insert": [f"""UPDATE daily_bars b SET {SET_VALUES}
FROM daily_bars_stage s
WHERE b.trade_date = s.trade_date AND b.ts_code = s.ts_code AND b.trade_date = ANY(%(dates)s::date[])
  AND {DISTINCT_VALUES}""", f"""INSERT INTO daily_bars ({COLUMNS})
SELECT {COLUMNS} FROM daily_bars_stage s
WHERE NOT EXISTS (SELECT 1 FROM daily_bars b WHERE b.trade_date = s.trade_date AND b.ts_code = s.ts_code
                  AND b.trade_date = ANY(%(dates)s::date[]))"""],
}


@dataclass(frozen=True)
class Candidate:
    name: str
    text: str  # what it is, for the table
    ddl: Callable[[list[int]], list[str]]  # years of data -> statements
    series: dict[str, str]  # query name -> statement


def _plain(key: str, extra: str = "", code_type: str = "text", fillfactor: int = 100
           ) -> Callable[[list[int]], list[str]]:
    def ddl(years: list[int]) -> list[str]:
        statements = [f"CREATE TABLE daily_bars ({COLUMN_TYPES.format(code_type=code_type)}, "
                      f"PRIMARY KEY ({key})) WITH (fillfactor = {fillfactor})"]
        if extra:
            statements.append(extra)
        return statements
    return ddl


def _by_year(key: str, code_type: str = 'text COLLATE "C"') -> Callable[[list[int]], list[str]]:
    def ddl(years: list[int]) -> list[str]:
        statements = [f"CREATE TABLE daily_bars ({COLUMN_TYPES.format(code_type=code_type)}, "
                      f"PRIMARY KEY ({key})) PARTITION BY RANGE (trade_date)"]
        for year in years:
            statements.append(f"CREATE TABLE daily_bars_{year} PARTITION OF daily_bars "
                              f"FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01')")
        return statements
    return ddl


C = 'text COLLATE "C"'
CANDIDATES = {c.name: c for c in [
    Candidate("code_key", "before: PK (ts_code, trade_date) + index (trade_date)",
              _plain("ts_code, trade_date", "CREATE INDEX daily_bars_trade_date ON daily_bars (trade_date)"),
              {"by_code": SERIES_BY_CODE}),
    Candidate("code_key_c", 'PK (ts_code COLLATE "C", trade_date) + index (trade_date)',
              _plain("ts_code, trade_date", "CREATE INDEX daily_bars_trade_date ON daily_bars (trade_date)",
                     code_type=C),
              {"by_code": SERIES_BY_CODE}),
    Candidate("date_key_default_collation", "PK (trade_date, ts_code), ts_code in the database's collation",
              _plain("trade_date, ts_code"), {"by_dates": SERIES_BY_DATES}),
    Candidate("date_key", 'PK (trade_date, ts_code COLLATE "C")',
              _plain("trade_date, ts_code", code_type=C),
              {"by_dates": SERIES_BY_DATES, "skip_scan": SERIES_SKIP_SCAN, "by_code": SERIES_BY_CODE}),
    Candidate("date_key_ff90", 'PK (trade_date, ts_code COLLATE "C"), fillfactor 90',
              _plain("trade_date, ts_code", code_type=C, fillfactor=90), {"by_dates": SERIES_BY_DATES}),
    Candidate("date_key_code_index", 'PK (trade_date, ts_code COLLATE "C") + index (ts_code, trade_date)',
              _plain("trade_date, ts_code",
                     "CREATE INDEX daily_bars_ts_code ON daily_bars (ts_code, trade_date)", code_type=C),
              {"by_code": SERIES_BY_CODE}),
    Candidate("year_parts_date_key", 'partitioned by year, PK (trade_date, ts_code COLLATE "C")',
              _by_year("trade_date, ts_code"), {"by_dates": SERIES_BY_DATES}),
    Candidate("year_parts_code_key", 'partitioned by year, PK (ts_code COLLATE "C", trade_date)',
              _by_year("ts_code, trade_date"), {"by_code": SERIES_BY_CODE}),
]}


def _one(cur: Any, sql: str, params: Any = None) -> Any:
    cur.execute(sql, params)
    return cur.fetchone()[0]


def _timed(conn: Any, work: Callable[[Any], None]) -> float:
    began = time.perf_counter()
    with conn.cursor() as cur:
        work(cur)
    conn.commit()
    return time.perf_counter() - began


def measure(conn: Any, candidate: Candidate, rows: float, repeats: int = 10) -> dict[str, Any]:
    codes = synth.codes()
    history = synth.trading_days(synth.days_for_rows(rows)) if rows else []
    years = sorted({d.year for d in history} | {2030, 2031})
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS daily_bars, synced_dates, bench_raw_bars CASCADE")
        for statement in candidate.ddl(years):
            cur.execute(statement)
        cur.execute("CREATE TABLE synced_dates (trade_date date PRIMARY KEY, rows integer NOT NULL)")
        cur.execute(f"CREATE UNLOGGED TABLE bench_raw_bars ({COLUMN_TYPES.format(code_type='text')})")
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS daily_bars_stage ({COLUMN_TYPES.format(code_type='text')}) "
                    "ON COMMIT DELETE ROWS")
    conn.commit()

    began = time.perf_counter()
    for chunk, data in synth.copy_chunks(history, codes):
        with conn.cursor() as cur:
            cur.copy_expert(f"COPY daily_bars ({COLUMNS}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(data))
            cur.copy_expert(f"COPY bench_raw_bars ({COLUMNS}) FROM STDIN WITH (FORMAT binary)",
                            io.BytesIO(data))
            cur.executemany("INSERT INTO synced_dates VALUES (%s, %s)", [(d, len(codes)) for d in chunk])
        conn.commit()
    load_s = time.perf_counter() - began
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE daily_bars")
        cur.execute("VACUUM ANALYZE synced_dates")
        cur.execute("CHECKPOINT")
    conn.autocommit = False

    new_days = iter(date(2030, 1, 1) + timedelta(days=i) for i in range(10_000))

    def new_day(cur: Any, raw: bool = False) -> Callable[[Any], None]:
        day = next(new_days)
        ((_, data),) = synth.copy_chunks([day], codes)

        def write(cur: Any) -> None:
            if raw:
                cur.copy_expert(f"COPY bench_raw_bars ({COLUMNS}) FROM STDIN WITH (FORMAT binary)",
                                io.BytesIO(data))
                return
            cur.execute("SELECT EXISTS (SELECT 1 FROM daily_bars WHERE trade_date = ANY(%s::date[]))",
                        ([day],))
            cur.fetchone()
            cur.copy_expert(f"COPY daily_bars ({COLUMNS}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(data))
            cur.execute("INSERT INTO synced_dates VALUES (%s, %s)", (day, len(codes)))
        return write

    def resync(day: date, shift: float, strategy: str) -> Callable[[Any], None]:
        ((_, data),) = synth.copy_chunks([day], codes, shift=shift)

        def write(cur: Any) -> None:
            cur.execute("SELECT EXISTS (SELECT 1 FROM daily_bars WHERE trade_date = ANY(%s::date[]))",
                        ([day],))
            cur.fetchone()
            if strategy == "delete_copy":
                cur.execute("DELETE FROM daily_bars WHERE trade_date = ANY(%s::date[])", ([day],))
                cur.copy_expert(f"COPY daily_bars ({COLUMNS}) FROM STDIN WITH (FORMAT binary)",
                                io.BytesIO(data))
                return
            cur.copy_expert(f"COPY daily_bars_stage ({COLUMNS}) FROM STDIN WITH (FORMAT binary)",
                            io.BytesIO(data))
            for statement in RESYNC[strategy]:
                cur.execute(statement, {"dates": [day]})
        return write

    result: dict[str, Any] = {"candidate": candidate.name, "text": candidate.text, "rows": 0,
                              "load_s": round(load_s, 1)}
    # One untimed write of each kind: the connection's caches, the temp table.
    _timed(conn, new_day(None))
    strategies = [*RESYNC, "delete_copy"]
    times: dict[str, list[float]] = {"new": [], "limit": [], "after_checkpoint": []}
    for strategy in strategies:
        times[f"resync_{strategy}"] = []
        times[f"resync_{strategy}_changed"] = []
    rng = random.Random(11)
    stored = history or [date(2030, 1, 1)]
    for i in range(repeats):
        times["new"].append(_timed(conn, new_day(None)))
        times["limit"].append(_timed(conn, new_day(None, raw=True)))
        for strategy in strategies:
            times[f"resync_{strategy}"].append(_timed(conn, resync(rng.choice(stored), 0.0, strategy)))
        if i % 2 == 0:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CHECKPOINT")
            conn.autocommit = False
            times["after_checkpoint"].append(_timed(conn, new_day(None)))
            for strategy in strategies:
                times[f"resync_{strategy}_changed"].append(
                    _timed(conn, resync(rng.choice(stored), 0.01 * (i + 1), strategy)))
    for name, values in times.items():
        result[f"{name}_ms"] = round(1000 * median(values), 2)

    with conn.cursor() as cur:
        result["rows"] = _one(cur, "SELECT count(*) FROM daily_bars")
        picks = rng.sample(range(len(codes)), 12)
        for name, sql in candidate.series.items():
            cold, warm, counts = [], [], []
            for k in picks:
                code = codes[k].decode()
                for bucket in (cold, warm):
                    began = time.perf_counter()
                    cur.execute(sql, {"code": code})
                    counts.append(len(cur.fetchall()))
                    bucket.append(time.perf_counter() - began)
            result[f"series_{name}_ms"] = round(1000 * median(cold), 2)
            result[f"series_{name}_warm_ms"] = round(1000 * median(warm), 2)
            result[f"series_{name}_rows"] = int(median(counts))
        sections = []
        for day in rng.sample(stored, min(12, len(stored))):
            began = time.perf_counter()
            cur.execute(CROSS_SECTION, {"day": day})
            cur.fetchall()
            sections.append(time.perf_counter() - began)
        result["cross_section_ms"] = round(1000 * median(sections), 2)
        tree = ("(SELECT relid FROM pg_partition_tree('daily_bars') "
                "UNION SELECT 'daily_bars'::regclass) AS t")
        result["table_mb"] = round(float(_one(cur, f"SELECT sum(pg_table_size(relid)) FROM {tree}")) / 2**20, 1)
        cur.execute(f"""SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid)
                        FROM {tree} JOIN pg_index i ON i.indrelid = t.relid""")
        indexes: dict[str, float] = {}
        for name, size in cur.fetchall():
            key = "pkey" if name.endswith("pkey") else name.split("_")[-1]
            indexes[key] = round(indexes.get(key, 0) + size / 2**20, 1)
        result["index_mb"] = indexes
    conn.rollback()
    for name in times:
        if name != "limit":
            result[f"x_{name}"] = round(result[f"{name}_ms"] / result["limit_ms"], 2)
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| candidate | rows | new day | after checkpoint | re-sync | limit | "
             "series (cold; warm) | cross-section | table; indexes MB | preload |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        resync = "; ".join(f"{k[7:-3]} {r[k]} ms ({r['x_' + k[:-3]]}x)" for k in r
                           if k.startswith("resync_") and k.endswith("_ms"))
        series = "; ".join(f"{k[7:-3]} {r[k]} ms; {r[k[:-3] + '_warm_ms']} ms" for k in r
                           if k.startswith("series_") and k.endswith("_ms") and not k.endswith("warm_ms"))
        lines.append(
            f"| {r['text']} | {r['rows']:,} | {r['new_ms']} ms ({r['x_new']}x) | "
            f"{r['after_checkpoint_ms']} ms ({r['x_after_checkpoint']}x) | "
            f"{resync} | {r['limit_ms']} ms | "
            f"{series} | {r['cross_section_ms']} ms | {r['table_mb']}; "
            f"{', '.join(f'{k} {v}' for k, v in r['index_mb'].items())} | {r['load_s']} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import psycopg2

    from devstack.services import EmbeddedPostgres
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--only", default=",".join(CANDIDATES))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="stocksync-schemas-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pgdata")
        url = postgres.start()
        try:
            conn = psycopg2.connect(url)
            for name in names:
                began = time.monotonic()
                results.append(measure(conn, CANDIDATES[name], args.rows, args.repeats))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
                print(f"  {name}: {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
            conn.close()
        finally:
            postgres.stop()
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
