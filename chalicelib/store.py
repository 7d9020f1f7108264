"""Writing one day of bars: a binary COPY, straight into `daily_bars` when the day is new.

Both paths run on the caller's cursor, inside the transaction that also settles
the day, so a day's rows and its status commit together or not at all.

- A day with no rows stored yet (every first sync) is COPYed straight into
  `daily_bars`: nothing can conflict, so the upsert's per-row conflict check is
  pure cost. Should a row appear meanwhile (a concurrent writer of the same
  date), the COPY is rolled back to a savepoint and the upsert runs instead.
- Otherwise (a forced re-sync) the rows are COPYed into a staging table and
  upserted: `INSERT ... ON CONFLICT DO UPDATE`, unchanged rows not rewritten.

The COPY input is PostgreSQL's binary format (chalicelib.pgcopy); a frame that
format does not fit takes the CSV path, so what is stored never depends on the path.
"""
from __future__ import annotations

import io
from datetime import date
from typing import Any

import pandas as pd
import psycopg2
import psycopg2.extensions

from chalicelib.db import query
from chalicelib.pgcopy import encode_daily_bars
from chalicelib.source import DAILY_FIELDS


def frame_to_csv(frame: pd.DataFrame) -> io.StringIO:
    # Empty fields are NULL in COPY's CSV format, which is what NaN must become.
    buffer = io.StringIO()
    frame.to_csv(buffer, columns=list(DAILY_FIELDS), header=False, index=False)
    buffer.seek(0)
    return buffer


def frame_to_copy(frame: pd.DataFrame, encoding: str = "utf_8") -> bytes | None:
    """The frame as COPY BINARY input in DAILY_FIELDS order, or None when it holds
    values that only the CSV path handles (the same way as before)."""
    encoded = encode_daily_bars(frame, encoding)
    return None if encoded is None else encoded[0]


def write_daily_bars(cur: Any, frame: pd.DataFrame) -> int:
    """Upsert a day's bars; returns how many rows the day has."""
    encoded = encode_daily_bars(frame, _python_encoding(cur))
    if encoded is None:
        _upsert(cur, "copy_bars_stage", frame_to_csv(frame))
        return len(frame)
    data, dates = encoded
    if not _any_stored(cur, dates) and _copy_new(cur, data):
        return len(frame)
    _upsert(cur, "copy_bars_stage_binary", io.BytesIO(data))
    return len(frame)


def _upsert(cur: Any, copy_query: str, data: io.IOBase) -> None:
    cur.execute(query("create_bars_stage"))
    cur.copy_expert(query(copy_query), data)
    cur.execute(query("upsert_bars_from_stage"))


def _any_stored(cur: Any, dates: list[date]) -> bool:
    cur.execute(query("bars_dates_stored"), {"dates": dates})
    row = cur.fetchone()
    return bool(row["stored"] if isinstance(row, dict) else row[0])


def _copy_new(cur: Any, data: bytes) -> bool:
    """COPY rows of days not stored yet straight into daily_bars; False (and
    nothing written) if a row turned out to be there after all."""
    cur.execute("SAVEPOINT daily_bars_copy")
    try:
        cur.copy_expert(query("copy_bars_new"), io.BytesIO(data))
    except (psycopg2.IntegrityError, psycopg2.DataError):
        # A concurrent writer's row (unique violation), or a column type this
        # format does not fit: the staging upsert decides, as it always did.
        cur.execute("ROLLBACK TO SAVEPOINT daily_bars_copy")
        return False
    cur.execute("RELEASE SAVEPOINT daily_bars_copy")
    return True


def _python_encoding(cur: Any) -> str:
    name = getattr(getattr(cur, "connection", None), "encoding", None) or "UTF8"
    return psycopg2.extensions.encodings.get(name, "utf_8")
