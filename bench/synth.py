"""Synthesized history for the benchmarks at size: ~5,300 stocks a trading day, as COPY input.

Bars are a cheap deterministic function of (stock, trade date): the sample
server's price model costs ~15 ms a day, far too slow for 2,500 days, and a
benchmark of storage only needs plausible doubles and the real key shapes
(ts_codes of the sample universe, the exchange's own trading days).
"""
from __future__ import annotations

from datetime import date
from typing import Iterator

import numpy as np

from chalicelib.pgcopy import encode_columns

STOCKS = 5300
VALUE_FIELDS = ("open", "high", "low", "close", "pre_close", "change", "pct_chg", "vol", "amount")
# History ends before the ranges the other groups sync (2025-08 .. 2025-10), so a
# preloaded table is older than every day a benchmark writes: new days append.
HISTORY_END = date(2025, 7, 31)
_PG_EPOCH = np.datetime64("2000-01-01", "D")


def codes(count: int = STOCKS) -> np.ndarray:
    """`count` ts_codes of the sample universe, evenly spread over it, sorted, as bytes."""
    from devstack.sample_data import default_market
    universe = default_market().universe.ts_code
    picked = universe[np.linspace(0, len(universe) - 1, min(count, len(universe))).astype(int)]
    return np.array([c.encode("ascii") for c in picked], dtype="S9")


def trading_days(count: int, end: date = HISTORY_END) -> list[date]:
    """The exchange's last `count` sessions up to `end`, oldest first."""
    from devstack.sample_data import default_market
    sessions = default_market().calendar.sessions
    stop = int(np.searchsorted(sessions, np.datetime64(end, "D"), side="right"))
    picked = sessions[max(0, stop - count):stop]
    return [d.item() for d in picked]


def days_for_rows(rows: float, stocks: int = STOCKS) -> int:
    return int(round(rows / stocks))


def values(stock: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The nine value columns (open .. amount) for (stock, day-number) pairs."""
    t = day.astype(np.float64)
    s = stock.astype(np.float64)
    base = 5.0 + (s * 7.31) % 60.0
    close = np.round(base * (1.0 + 0.25 * np.sin(t / (40.0 + s % 97) + s)), 2)
    pre = np.round(base * (1.0 + 0.25 * np.sin((t - 1) / (40.0 + s % 97) + s)), 2)
    open_ = np.round((close + pre) / 2, 2)
    high = np.maximum(close, open_) + 0.05
    low = np.minimum(close, open_) - 0.05
    change = np.round(close - pre, 2)
    pct = np.round(change / pre * 100, 4)
    vol = np.round(50_000.0 + (s * 131.0 + t * 17.0) % 90_000.0, 2)
    amount = np.round(vol * close * 0.1, 3)
    return np.column_stack([open_, high, low, close, pre, change, pct, vol, amount])


def copy_chunks(days: list[date], stock_codes: np.ndarray, days_per_chunk: int = 25,
                shift: float = 0.0) -> Iterator[tuple[list[date], bytes]]:
    """Binary COPY input for the days, `days_per_chunk` at a time, each day's rows in
    ts_code order (as tushare sends them); `shift` moves every close (a re-sync that
    changes values)."""
    n = len(stock_codes)
    for first in range(0, len(days), days_per_chunk):
        chunk = days[first:first + days_per_chunk]
        numbers = (np.array(chunk, dtype="datetime64[D]") - _PG_EPOCH).astype(np.int64)
        day_col = np.repeat(numbers, n)
        stock_col = np.tile(np.arange(n), len(chunk))
        vals = values(stock_col, day_col)
        if shift:
            vals[:, 3] += shift
        yield chunk, encode_columns(np.tile(stock_codes, len(chunk)), day_col, vals)


def frame(day: date, stock_codes: np.ndarray, shift: float = 0.0):
    """One day as the DataFrame `TushareSource.daily` returns (str codes, 'YYYYMMDD'
    dates, float64 values), with the values the history's COPY stored for it."""
    import pandas as pd
    n = len(stock_codes)
    number = (np.datetime64(day, "D") - _PG_EPOCH).astype(np.int64)
    vals = values(np.arange(n), np.full(n, number))
    if shift:
        vals[:, 3] += shift
    data = {"ts_code": stock_codes.astype(str).astype(object),
            "trade_date": day.strftime("%Y%m%d")}
    for i, name in enumerate(VALUE_FIELDS):
        data[name] = vals[:, i]
    return pd.DataFrame(data)
