"""Writing one day of bars: COPY into a staging table, then an upsert.

Both run on the caller's cursor, inside the transaction that also settles the
day, so a day's rows and its status commit together or not at all.
"""
from __future__ import annotations

import io

import pandas as pd

from chalicelib.db import query
from chalicelib.source import DAILY_FIELDS


def frame_to_csv(frame: pd.DataFrame) -> io.StringIO:
    # Empty fields are NULL in COPY's CSV format, which is what NaN must become.
    buffer = io.StringIO()
    frame.to_csv(buffer, columns=list(DAILY_FIELDS), header=False, index=False)
    buffer.seek(0)
    return buffer


def write_daily_bars(cur, frame: pd.DataFrame) -> int:
    """Upsert a day's bars; returns how many rows the day has."""
    cur.execute(query("create_bars_stage"))
    cur.copy_expert(query("copy_bars_stage"), frame_to_csv(frame))
    cur.execute(query("upsert_bars_from_stage"))
    return len(frame)
