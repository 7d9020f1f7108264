"""tushare's interfaces over the sample market: each turns a call's params into
the ordered rows it answers, independent of HTTP, quotas and paging.

Row caps (rows one call may return; `limit` can ask for fewer, never more),
from tushare's documentation:
- daily 6000, daily_basic 6000 ("单次请求最大返回6000行");
- suspend_d 5000 (its documented 单次最大);
- stock_basic 6000 ("每次最多返回6000行", enough for the whole market by list_status);
- adj_factor: its page names no cap, so it gets its siblings' 6000: a whole
  market day fits in one call, a multi-day range does not;
- trade_cal: uncapped (a few thousand days at most).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from devstack.sample_data import (ADJ_FACTOR_FIELDS, DAILY_BASIC_FIELDS, DAILY_FIELDS,
                                  FIRST_SESSION, STOCK_BASIC_DEFAULT_FIELDS, STOCK_BASIC_FIELDS,
                                  SUSPEND_FIELDS, TRADE_CAL_FIELDS, SampleMarket, Table,
                                  parse_day)

DEFAULT_ROW_CAPS: dict[str, int | None] = {
    "daily": 6000, "daily_basic": 6000, "adj_factor": 6000, "suspend_d": 5000,
    "stock_basic": 6000, "trade_cal": None,
}
EXCHANGE_SUFFIX = {"SSE": ".SH", "SZSE": ".SZ", "BSE": ".BJ"}


class ApiError(Exception):
    """An answer with a non-zero tushare code (still HTTP 200, as tushare does);
    `outcome` names it in the server's stats."""

    def __init__(self, code: int, msg: str, outcome: str = "bad_params"):
        super().__init__(msg)
        self.code, self.msg, self.outcome = code, msg, outcome


@dataclass(frozen=True)
class Call:
    """One call as an interface sees it."""
    params: dict[str, Any]
    fields: Any
    offset: int           # the page's first row
    limit: int | None     # the page's rows at most (None: all)
    published: int        # sessions [0, published) have their data published
    today: np.datetime64  # the server's today in Asia/Shanghai


@dataclass(frozen=True)
class Rows:
    """A page's rows from its first, and one more if there are more."""
    fields: list[str]
    table: Table


def _window(table: Table, call: Call) -> Table:
    """An all-rows table cut to the call's page (and one row past it)."""
    end = None if call.limit is None else call.offset + call.limit + 1
    return {k: v[call.offset:end] for k, v in table.items()}


def field_list(fields: Any, known: tuple[str, ...], default: tuple[str, ...] | None = None
               ) -> list[str]:
    """tushare's `fields` is 'a,b' or a list; empty means the default ones; unknown
    names are dropped."""
    names = fields.split(",") if isinstance(fields, str) else (
        list(fields) if isinstance(fields, (list, tuple)) else [])
    chosen = [n.strip() for n in names if isinstance(n, str) and n.strip() in known]
    return chosen or list(default or known)


def int_param(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(40002, f"参数 {name} 必须是整数: {value!r}") from None


def codes_param(params: dict[str, Any]) -> list[str]:
    return [c.strip().upper() for c in str(params.get("ts_code") or "").split(",") if c.strip()]


def _date_param(params: dict[str, Any], name: str, default: Any) -> np.datetime64:
    try:
        return parse_day(params.get(name) or default)
    except ValueError as exc:
        raise ApiError(40002, f"日期参数错误: {exc}") from None


def _market_data(dataset: str, fields: tuple[str, ...], needs_selector: bool
                 ) -> Callable[[SampleMarket, Call], Rows]:
    """daily, adj_factor, daily_basic and suspend_d share their params: ts_code (a comma
    list), trade_date, start_date, end_date; rows come newest first, then by ts_code."""
    def handle(market: SampleMarket, call: Call) -> Rows:
        params = call.params
        codes = codes_param(params)
        if params.get("trade_date"):
            start = end = _date_param(params, "trade_date", None)
        elif codes or params.get("start_date") or params.get("end_date") or not needs_selector:
            start = _date_param(params, "start_date", FIRST_SESSION)
            end = _date_param(params, "end_date", call.today)
        else:
            raise ApiError(40002, f"{dataset} 需要 trade_date，或 ts_code / start_date")
        days = market.calendar.session_indices(start, end)
        days = days[days < call.published]  # not published yet: no rows, as tushare
        symbols = market.symbol_indices(codes) if codes else None
        keep = None
        if dataset == "suspend_d" and params.get("suspend_type"):
            wanted = str(params["suspend_type"]).strip().upper()
            keep = _of_type(wanted)
            if wanted not in ("S", "R"):
                days = days[:0]  # no such rows: no need to look
        table = market.query(dataset, symbols, days, call.offset, call.limit, keep)
        return Rows(field_list(call.fields, fields), table)
    return handle


def _of_type(suspend_type: str) -> Callable[[Table], np.ndarray]:
    def keep(table: Table) -> np.ndarray:
        return table["suspend_type"] == suspend_type
    return keep


def trade_cal(market: SampleMarket, call: Call) -> Rows:
    params = call.params
    start = _date_param(params, "start_date", FIRST_SESSION)
    end = _date_param(params, "end_date", f"{str(call.today)[:4]}1231")
    try:
        is_open = params.get("is_open")
        is_open = None if is_open in (None, "") else int(is_open)
    except (TypeError, ValueError) as exc:
        raise ApiError(40002, f"参数错误: {exc}") from None
    table = market.calendar.days(start, end)
    # tushare lists the calendar newest first.
    table = {k: v[::-1] for k, v in table.items()}
    table["exchange"] = np.full(len(table["cal_date"]), str(params.get("exchange") or "SSE"),
                                dtype=object)
    if is_open is not None:
        keep = table["is_open"] == is_open
        table = {k: v[keep] for k, v in table.items()}
    return Rows(field_list(call.fields, TRADE_CAL_FIELDS), _window(table, call))


def stock_basic(market: SampleMarket, call: Call) -> Rows:
    """Listings as of the server's today: list_status L (default), D or P; filters
    ts_code (comma list), exchange (SSE/SZSE/BSE), market (主板/创业板/...)."""
    params = call.params
    table = market.stock_basic(call.today)
    status = str(params.get("list_status") or "L").strip().upper()
    keep = table["list_status"] == status
    exchange = str(params.get("exchange") or "").strip().upper()
    if exchange:
        suffix = EXCHANGE_SUFFIX.get(exchange)
        keep &= np.array([suffix is not None and c.endswith(suffix) for c in table["ts_code"]],
                         dtype=bool)
    codes = codes_param(params)
    if codes:
        keep &= np.isin(table["ts_code"], codes)
    if params.get("market"):
        keep &= table["market"] == str(params["market"])
    table = {k: v[keep] for k, v in table.items()}
    return Rows(field_list(call.fields, STOCK_BASIC_FIELDS, STOCK_BASIC_DEFAULT_FIELDS),
                _window(table, call))


HANDLERS: dict[str, Callable[[SampleMarket, Call], Rows]] = {
    "daily": _market_data("daily", DAILY_FIELDS, needs_selector=True),
    "adj_factor": _market_data("adj_factor", ADJ_FACTOR_FIELDS, needs_selector=True),
    "daily_basic": _market_data("daily_basic", DAILY_BASIC_FIELDS, needs_selector=True),
    "suspend_d": _market_data("suspend_d", SUSPEND_FIELDS, needs_selector=False),
    "trade_cal": trade_cal,
    "stock_basic": stock_basic,
}


def published_sessions(market: SampleMarket, now_date: np.datetime64, minutes_of_day: int,
                       publish_minute: int) -> int:
    """How many sessions have their data out: every session before today, and today's
    once the publish time has passed."""
    last_day = now_date if minutes_of_day >= publish_minute else now_date - np.timedelta64(1, "D")
    return market.calendar.sessions_through(last_day)


