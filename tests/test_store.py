"""COPY-then-upsert of one day's bars: complete, idempotent, NULL-safe."""
from __future__ import annotations

import math

import pandas as pd

from chalicelib.store import frame_to_csv, write_daily_bars
from tests.conftest import fetch_all, scalar


def frame(rows: int, close: float = 10.0) -> pd.DataFrame:
    return pd.DataFrame({
        "ts_code": [f"{600000 + i}.SH" for i in range(rows)], "trade_date": "20251009",
        "open": close, "high": close + 1, "low": close - 1, "close": close,
        "pre_close": close, "change": 0.0, "pct_chg": 0.0, "vol": 100.0, "amount": 1000.0,
    })


def test_write_inserts_every_row_with_its_values(db):
    with db.transaction() as cur:
        assert write_daily_bars(cur, frame(1200)) == 1200
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 1200
    row = fetch_all(db, "SELECT * FROM daily_bars WHERE ts_code = '600007.SH'")[0]
    assert str(row["trade_date"]) == "2025-10-09" and row["high"] == 11.0


def test_rewriting_the_same_day_is_idempotent_and_updates_changed_values(db):
    with db.transaction() as cur:
        write_daily_bars(cur, frame(50))
    with db.transaction() as cur:
        write_daily_bars(cur, frame(50))
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 50
    with db.transaction() as cur:
        write_daily_bars(cur, frame(50, close=12.5))
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 50
    assert scalar(db, "SELECT min(close) FROM daily_bars") == 12.5


def test_missing_values_become_null(db):
    data = frame(3)
    data.loc[1, "pre_close"] = math.nan
    data.loc[2, "vol"] = None
    with db.transaction() as cur:
        write_daily_bars(cur, data)
    assert scalar(db, "SELECT count(*) FROM daily_bars WHERE pre_close IS NULL OR vol IS NULL") == 2


def test_a_rolled_back_transaction_leaves_no_rows(db):
    try:
        with db.transaction() as cur:
            write_daily_bars(cur, frame(500))
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 0


def test_csv_has_the_table_column_order():
    first = frame_to_csv(frame(1)).getvalue().splitlines()[0]
    assert first == "600000.SH,20251009,10.0,11.0,9.0,10.0,10.0,0.0,0.0,100.0,1000.0"
