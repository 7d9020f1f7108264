"""The tushare datasets a job can sync: each one's fields (tushare's names, in its table's
column order), the rows a complete day must have, and its documented row cap per call.

`expects` says which stocks a complete trade date has a row for (chalicelib.completeness):
  traded - listed that day and not suspended all day (daily, daily_basic);
  listed - listed that day, suspended or not (adj_factor: tushare's factors cover
           suspended days);
  None   - no count is known beforehand (suspend_d: whoever was halted or resumed).
"""
from __future__ import annotations

from dataclasses import dataclass

DAILY_FIELDS = ("ts_code", "trade_date", "open", "high", "low", "close", "pre_close",
                "change", "pct_chg", "vol", "amount")
ADJ_FACTOR_FIELDS = ("ts_code", "trade_date", "adj_factor")
DAILY_BASIC_FIELDS = ("ts_code", "trade_date", "close", "turnover_rate", "turnover_rate_f",
                      "volume_ratio", "pe", "pe_ttm", "pb", "ps", "ps_ttm", "dv_ratio", "dv_ttm",
                      "total_share", "float_share", "free_share", "total_mv", "circ_mv")
SUSPEND_FIELDS = ("ts_code", "trade_date", "suspend_timing", "suspend_type")
STOCK_BASIC_FIELDS = ("ts_code", "symbol", "name", "area", "industry", "market", "exchange",
                      "list_status", "list_date", "delist_date")


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # tushare's interface name, the job's word for it
    table: str
    fields: tuple[str, ...]
    expects: str | None  # "traded", "listed" or None (see the module's docstring)
    row_cap: int  # rows one call returns at most (tushare's documentation)
    key: tuple[str, ...] = ("ts_code",)  # what identifies a row within a trade date


DATASETS: dict[str, DatasetSpec] = {
    "daily": DatasetSpec("daily", "daily_bars", DAILY_FIELDS, "traded", 6000),
    "adj_factor": DatasetSpec("adj_factor", "adj_factor", ADJ_FACTOR_FIELDS, "listed", 6000),
    "daily_basic": DatasetSpec("daily_basic", "daily_basic", DAILY_BASIC_FIELDS, "traded", 6000),
    "suspend_d": DatasetSpec("suspend_d", "suspend_d", SUSPEND_FIELDS, None, 5000,
                             key=("ts_code", "suspend_type")),
}
DEFAULT_DATASETS = ("daily",)
# The order a day's datasets are worked in: suspensions first (the traded count needs them).
ORDER = ("suspend_d", "adj_factor", "daily", "daily_basic")


def ordered(names: list[str] | tuple[str, ...]) -> list[str]:
    return sorted(set(names), key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
