"""Fetching one day: stocksync's per-date strategy against the seed's per-stock one.

Both use the real tushare client against the same server (the sample one locally).

- per_date: `TushareSource.day_rows("daily", day, expected=...)`, one
  `daily(trade_date=...)` call a page (6,000 rows; a day has ~5,300), as the worker
  does: it knows the day's count beforehand from the stored listings and suspensions
  (fetched here outside the timer), so a page short of the cap is the last;
- per_stock: the seed's loop: `stock_basic` for the list, then one
  `daily(ts_code=..., start_date=day, end_date=day)` call per symbol. Only
  `sample` symbols (spread over the list) are timed; the per-day figure is
  extrapolated to every listed symbol, and says so.

Each repeat takes another trading day, so the sample server generates it afresh.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from bench.common import Timer, client, median, ms, reset, trading_days
from chalicelib.source import DAILY_FIELDS

# tushare's per-minute quota for `daily` at the common permission level: what the
# seed's per-stock loop runs into against the real service.
TUSHARE_CALLS_PER_MINUTE = 500


def _daily_calls(stack: Any) -> int | None:
    if stack.tushare is None:
        return None
    return int(stack.tushare.stats()["calls"].get("daily", 0))


def _expected_rows(src: Any, listings: Any, day: date) -> int:
    """The count the worker holds before it fetches a day (chalicelib.completeness):
    stocks listed that day and not suspended all day."""
    ymd = day.strftime("%Y%m%d")
    listed = listings[(listings["list_date"] <= ymd)
                      & (listings["delist_date"].isna() | (listings["delist_date"] > ymd))]
    suspended = src.day_rows("suspend_d", day)
    all_day = suspended[(suspended["suspend_type"] == "S") & suspended["suspend_timing"].isna()]
    return len(set(listed["ts_code"]) - set(all_day["ts_code"]))


def run(stack: Any, repeats: int = 5, sample: int = 200) -> dict[str, Any]:
    from chalicelib.source import TushareSource
    reset(stack)
    api = client(stack)  # the seed called the same client directly
    src = TushareSource(api)
    days = trading_days(stack, date(2025, 9, 1), date(2025, 10, 31))[-repeats:]
    fields = ",".join(DAILY_FIELDS)

    per_date_s, per_date_calls, per_date_rows = [], [], []
    complete: list[bool] = []  # each day's rows as many as the listings say
    per_stock_call_s, basic_s, listed = [], [], 0
    listings = src.listings()
    listings["delist_date"] = listings["delist_date"].replace("", None)
    for day in days:
        expected = _expected_rows(src, listings, day)
        before = _daily_calls(stack)
        with Timer() as timer:
            frame = src.day_rows("daily", day, expected=expected)
        per_date_s.append(timer.seconds)
        per_date_rows.append(len(frame))
        complete.append(len(frame) == expected)
        if before is not None:
            per_date_calls.append(_daily_calls(stack) - before)

        with Timer() as timer:
            symbols = api.query("stock_basic", list_status="L", fields="ts_code")["ts_code"].tolist()
        basic_s.append(timer.seconds)
        listed = len(symbols)
        step = max(1, len(symbols) // max(1, sample))
        chosen = symbols[::step][:sample]
        yyyymmdd = day.strftime("%Y%m%d")
        with Timer() as timer:
            for code in chosen:
                api.query("daily", ts_code=code, start_date=yyyymmdd, end_date=yyyymmdd,
                             fields=fields)
        per_stock_call_s.append(timer.seconds / max(1, len(chosen)))

    call_s = median(per_stock_call_s)
    per_stock_wall_s = median(basic_s) + call_s * listed
    per_date_wall_s = median(per_date_s)
    per_stock_calls = 1 + listed
    return {
        "days": [d.isoformat() for d in days],
        "rows_per_day": int(median(per_date_rows)),
        "per_date_calls": int(median(per_date_calls)) if per_date_calls else None,
        "per_date_complete": all(complete),
        "per_date_wall_ms": ms(per_date_wall_s),
        "per_stock_calls": per_stock_calls,
        "per_stock_wall_s": round(per_stock_wall_s, 2),
        "per_stock_call_ms": ms(call_s),
        "per_stock_sampled": min(sample, listed),
        "per_stock_extrapolated": True,
        "x_faster": round(per_stock_wall_s / per_date_wall_s, 1),
        # Against real tushare the quota, not the server, bounds the per-stock loop.
        "per_stock_quota_min": round(per_stock_calls / TUSHARE_CALLS_PER_MINUTE, 1),
        "repeats": len(days),
    }
