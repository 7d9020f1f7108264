"""The write path's binary COPY: what it stores is what the CSV path stored, whichever
branch runs (straight COPY for a new day, staging MERGE for a stored one, the upsert
when a concurrent writer or an old server calls for it, CSV for frames the binary
format does not take)."""
from __future__ import annotations

import math

import pandas as pd
import psycopg2
import pytest

from chalicelib import store
from chalicelib.db import query
from chalicelib.store import frame_to_copy, frame_to_csv, write_daily_bars
from tests.conftest import fetch_all, scalar


def frame(rows: int = 5, trade_date: object = "20251009", close: float = 10.0) -> pd.DataFrame:
    return pd.DataFrame({
        "ts_code": [f"{600000 + i}.SH" for i in range(rows)], "trade_date": trade_date,
        "open": close, "high": close + 1, "low": close - 1, "close": close,
        "pre_close": close, "change": 0.0, "pct_chg": 0.0, "vol": 100.0, "amount": 1000.0,
    })


def awkward() -> pd.DataFrame:
    data = frame(6)
    data.loc[0, "ts_code"] = "8300001.BJ"   # another length
    data.loc[1, "ts_code"] = "中文.SZ"       # not ASCII
    data.loc[2, "pre_close"] = math.nan
    data.loc[3, ["vol", "amount"]] = math.nan
    data.loc[4, "amount"] = math.inf
    data.loc[5, "change"] = -0.0
    data["vol"] = data["vol"].astype("float64")
    data["pct_chg"] = 3  # an integer column
    data["pct_chg"] = data["pct_chg"].astype("int64")
    return data


class Spy:
    """A cursor that records the statements it runs."""

    def __init__(self, cur):
        self._cur = cur
        self.statements: list[str] = []

    def execute(self, sql, params=None):
        self.statements.append(sql)
        return self._cur.execute(sql, params)

    def copy_expert(self, sql, data):
        self.statements.append(sql)
        return self._cur.copy_expert(sql, data)

    def __getattr__(self, name):
        return getattr(self._cur, name)


def stored(db) -> list[tuple]:
    rows = fetch_all(db, "SELECT * FROM daily_bars ORDER BY ts_code, trade_date")
    # repr tells -0.0 from 0.0 and keeps every bit of a double.
    return [tuple(repr(v) for v in row.values()) for row in rows]


def csv_path(db, data: pd.DataFrame) -> None:
    """The write path before binary COPY: pandas CSV, staging table, upsert."""
    with db.transaction() as cur:
        cur.execute(query("daily_bars_stage_create"))
        cur.copy_expert(query("daily_bars_stage_copy_csv"), frame_to_csv(data))
        cur.execute(query("daily_bars_upsert_from_stage"))


def test_a_new_day_is_copied_straight_into_daily_bars(db):
    with db.transaction() as cur:
        spy = Spy(cur)
        assert write_daily_bars(spy, frame(300)) == 300
    copies = [s for s in spy.statements if s.startswith("COPY")]
    assert copies == [query("daily_bars_copy_new")]
    assert not any("daily_bars_stage" in s for s in spy.statements)
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 300


def test_a_stored_day_takes_the_binary_merge_and_updates_changed_values(db):
    with db.transaction() as cur:
        write_daily_bars(cur, frame(50))
    with db.transaction() as cur:
        spy = Spy(cur)
        write_daily_bars(spy, frame(60, close=12.5))
    assert query("daily_bars_stage_copy_binary") in spy.statements
    assert query("daily_bars_merge_from_stage") in spy.statements
    assert query("daily_bars_upsert_from_stage") not in spy.statements
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 60
    assert scalar(db, "SELECT count(*) FROM daily_bars WHERE close = 12.5") == 60


def test_a_resync_with_the_same_values_rewrites_no_row(db):
    with db.transaction() as cur:
        write_daily_bars(cur, frame(40))
    before = fetch_all(db, "SELECT ctid::text AS at, xmin::text AS x FROM daily_bars ORDER BY ts_code")
    with db.transaction() as cur:
        write_daily_bars(cur, frame(40))
    after = fetch_all(db, "SELECT ctid::text AS at, xmin::text AS x FROM daily_bars ORDER BY ts_code")
    assert after == before  # same tuples: neither updated nor locked (a lock would set xmax)
    assert scalar(db, "SELECT count(*) FROM daily_bars WHERE xmax <> '0'") == 0


def test_a_server_without_merge_takes_the_upsert(db, monkeypatch):
    with db.transaction() as cur:
        write_daily_bars(cur, frame(30))
    monkeypatch.setattr(store, "_server_version", lambda cur: 140010)
    with db.transaction() as cur:
        spy = Spy(cur)
        write_daily_bars(spy, frame(35, close=8.0))
    assert query("daily_bars_merge_from_stage") not in spy.statements
    assert query("daily_bars_upsert_from_stage") in spy.statements
    assert scalar(db, "SELECT count(*) FROM daily_bars WHERE close = 8.0") == 35


def test_binary_and_csv_paths_store_the_same_bits(db):
    csv_path(db, awkward())
    expected = stored(db)
    with db.transaction() as cur:
        cur.execute("TRUNCATE daily_bars")
    with db.transaction() as cur:
        write_daily_bars(cur, awkward())
    assert stored(db) == expected
    assert any("-0.0" in row for row in expected)
    # And once more through the upsert branch: nothing changes.
    with db.transaction() as cur:
        write_daily_bars(cur, awkward())
    assert stored(db) == expected


def test_integer_trade_dates_are_read_as_yyyymmdd(db):
    with db.transaction() as cur:
        write_daily_bars(cur, frame(3, trade_date=20251009))
    assert str(scalar(db, "SELECT min(trade_date) FROM daily_bars")) == "2025-10-09"


def test_frames_the_binary_format_does_not_take_go_the_csv_way(db):
    data = frame(3)
    data["pre_close"] = None  # an object column of None
    assert frame_to_copy(data) is None
    with db.transaction() as cur:
        spy = Spy(cur)
        write_daily_bars(spy, data)
    assert query("daily_bars_stage_copy_csv") in spy.statements
    assert scalar(db, "SELECT count(*) FROM daily_bars WHERE pre_close IS NULL") == 3


@pytest.mark.parametrize("column, value", [("ts_code", None), ("ts_code", ""),
                                           ("trade_date", "2025-10-09"), ("trade_date", None),
                                           ("vol", "100")])
def test_odd_values_leave_the_binary_format(column, value):
    data = frame(2)
    data[column] = data[column].astype(object)
    data.loc[1, column] = value
    assert frame_to_copy(data) is None


def test_a_row_appearing_before_the_copy_falls_back_to_the_upsert(db, monkeypatch):
    # A concurrent writer of the same date: the check saw nothing, the COPY meets its row.
    with db.transaction() as cur:
        write_daily_bars(cur, frame(1, close=1.0))
    any_stored = store._any_stored
    monkeypatch.setattr(store, "_any_stored", lambda cur, dataset, dates: any_stored(cur, dataset, dates) and False)
    with db.transaction() as cur:
        assert write_daily_bars(cur, frame(40, close=7.0)) == 40
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 40
    assert scalar(db, "SELECT count(*) FROM daily_bars WHERE close = 7.0") == 40


def test_duplicate_codes_in_a_frame_still_fail_the_write(db):
    data = pd.concat([frame(3), frame(1)], ignore_index=True)
    with pytest.raises(psycopg2.errors.CardinalityViolation):
        with db.transaction() as cur:
            write_daily_bars(cur, data)
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 0


def test_duplicate_codes_over_a_stored_day_fail_the_write_and_change_nothing(db):
    with db.transaction() as cur:
        write_daily_bars(cur, frame(3))
    before = stored(db)
    for extra in (frame(1, close=2.0), frame(5).iloc[4:]):  # a stored code twice; a new code twice
        data = pd.concat([frame(5, close=3.0), extra], ignore_index=True)
        with pytest.raises(psycopg2.errors.CardinalityViolation):
            with db.transaction() as cur:
                write_daily_bars(cur, data)
        assert stored(db) == before


def test_an_empty_frame_writes_nothing(db):
    with db.transaction() as cur:
        assert write_daily_bars(cur, frame(0)) == 0
    assert scalar(db, "SELECT count(*) FROM daily_bars") == 0
