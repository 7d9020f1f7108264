"""Writing one day of a dataset: a binary COPY, straight into the table when the day is new.

A dataset table holds one row per (trade_date, ts_code) and is keyed in that order
(the convention in migrations/006_bars_by_date.sql): a day's rows are written
together and land side by side in the key. `Dataset` names the table and its
columns; its statements are the queries named `<table>_<step>` in queries.sql.

Every path runs on the caller's cursor, inside the transaction that also settles
the day, so a day's rows and its status commit together or not at all.

- A day with no rows stored yet (every first sync) is COPYed straight into the
  table: nothing can conflict, so a per-row conflict check is pure cost. Should a
  row appear meanwhile (a concurrent writer of the same date), the COPY is rolled
  back to a savepoint and the upsert runs instead.
- Otherwise (a forced re-sync) the rows are COPYed into a staging table and
  MERGEd: joined with the stored day, only changed rows rewritten, missing ones
  inserted; no lock is taken on an unchanged row (`INSERT ... ON CONFLICT DO
  UPDATE ... WHERE` locks every row it meets, which doubles a re-sync's cost).
  A unique violation (a concurrent writer's new row) sends it to the upsert, which
  settles such races; so does a server older than PostgreSQL 15 (no MERGE).

The COPY input is PostgreSQL's binary format (chalicelib.pgcopy); a frame that
format does not fit takes the CSV path and the upsert, so what is stored never
depends on the path.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import psycopg2
import psycopg2.extensions

from chalicelib.db import query
from chalicelib.pgcopy import encode_frame
from chalicelib.datasets import DATASETS, DAILY_FIELDS

MERGE_SINCE = 150000  # server_version_num of PostgreSQL 15


@dataclass(frozen=True)
class Dataset:
    """A table of one row per (trade_date, ts_code)."""
    table: str
    fields: tuple[str, ...]  # COPY's column order: ts_code, trade_date, then the values

    def query(self, step: str) -> str:
        return query(f"{self.table}_{step}")


DAILY_BARS = Dataset("daily_bars", DAILY_FIELDS)
# Each syncable dataset's table, by the dataset's (tushare's) name.
TABLES: dict[str, Dataset] = {name: Dataset(spec.table, spec.fields) for name, spec in DATASETS.items()}


def frame_to_csv(frame: pd.DataFrame, fields: tuple[str, ...] = DAILY_FIELDS) -> io.StringIO:
    # Empty fields are NULL in COPY's CSV format, which is what NaN must become.
    buffer = io.StringIO()
    frame.to_csv(buffer, columns=list(fields), header=False, index=False)
    buffer.seek(0)
    return buffer


def frame_to_copy(frame: pd.DataFrame, encoding: str = "utf_8",
                  fields: tuple[str, ...] = DAILY_FIELDS) -> bytes | None:
    """The frame as COPY BINARY input in `fields` order, or None when it holds
    values that only the CSV path handles."""
    encoded = encode_frame(frame, fields, encoding)
    return None if encoded is None else encoded[0]


def write_daily_bars(cur: Any, frame: pd.DataFrame) -> int:
    """Write a day's bars (new, or over the stored ones); returns how many rows the day has."""
    return write_rows(cur, DAILY_BARS, frame)


def write_rows(cur: Any, dataset: Dataset, frame: pd.DataFrame) -> int:
    """Write a day's rows of `dataset`; returns how many rows the frame has."""
    encoded = encode_frame(frame, dataset.fields, _python_encoding(cur))
    if encoded is None:
        _stage(cur, dataset, "stage_copy_csv", frame_to_csv(frame, dataset.fields))
        cur.execute(dataset.query("upsert_from_stage"))
        return len(frame)
    data, dates = encoded
    if not _any_stored(cur, dataset, dates) and _copy_new(cur, dataset, data):
        return len(frame)
    _stage(cur, dataset, "stage_copy_binary", io.BytesIO(data))
    if not _merge(cur, dataset, dates):
        cur.execute(dataset.query("upsert_from_stage"))
    return len(frame)


def _stage(cur: Any, dataset: Dataset, copy_step: str, data: io.IOBase) -> None:
    cur.execute(dataset.query("stage_create"))
    cur.copy_expert(dataset.query(copy_step), data)


def _any_stored(cur: Any, dataset: Dataset, dates: list[date]) -> bool:
    """Whether any row of these dates is stored; also sets the savepoint a new day's
    COPY rolls back to (one round trip for both: a day's write is a few ms)."""
    cur.execute("SAVEPOINT dataset_copy; " + dataset.query("dates_stored"), {"dates": dates})
    row = cur.fetchone()
    return bool(row["stored"] if isinstance(row, dict) else row[0])


def _copy_new(cur: Any, dataset: Dataset, data: bytes) -> bool:
    """COPY rows of days not stored yet straight into the table; False (and
    nothing written) if a row turned out to be there after all. The savepoint is
    left to the commit to release (one round trip fewer)."""
    try:
        cur.copy_expert(dataset.query("copy_new"), io.BytesIO(data))
    except (psycopg2.IntegrityError, psycopg2.DataError):
        # A concurrent writer's row (unique violation), or a column type this
        # format does not fit: the staged MERGE or upsert decides.
        cur.execute("ROLLBACK TO SAVEPOINT dataset_copy")
        return False
    return True


def _merge(cur: Any, dataset: Dataset, dates: list[date]) -> bool:
    """MERGE the staged rows into their stored days; False (and nothing written)
    when the upsert has to decide instead."""
    if _server_version(cur) < MERGE_SINCE:
        return False
    cur.execute("SAVEPOINT dataset_merge")
    try:
        cur.execute(dataset.query("merge_from_stage"), {"dates": dates})
    except psycopg2.IntegrityError:
        # A row inserted meanwhile by a concurrent writer of the same day, or one
        # key twice in the frame: the upsert settles the first, reports the second.
        cur.execute("ROLLBACK TO SAVEPOINT dataset_merge")
        return False
    cur.execute("RELEASE SAVEPOINT dataset_merge")
    return True


def _server_version(cur: Any) -> int:
    return int(getattr(getattr(cur, "connection", None), "server_version", 0) or 0)


def _python_encoding(cur: Any) -> str:
    name = getattr(getattr(cur, "connection", None), "encoding", None) or "UTF8"
    return psycopg2.extensions.encodings.get(name, "utf_8")
