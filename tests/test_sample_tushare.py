"""The sample tushare server, driven through the real `tushare` client."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import requests
from tushare.pro.client import DataApi

from devstack.sample_tushare import (DEFAULT_TOKEN, MSG_NO_PERMISSION, MSG_RATE_LIMIT,
                                     SampleTushareServer)

DAILY_FIELDS = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close",
                "change", "pct_chg", "vol", "amount"]
DAILY_BASIC_FIELDS = ["ts_code", "trade_date", "close", "turnover_rate", "turnover_rate_f",
                      "volume_ratio", "pe", "pe_ttm", "pb", "ps", "ps_ttm", "dv_ratio", "dv_ttm",
                      "total_share", "float_share", "free_share", "total_mv", "circ_mv"]
ROOT = Path(__file__).resolve().parent.parent
# A fixed "now" for the listing tests: a few listings are paused (P) then.
LATE_2026 = "2026-11-02T18:00:00+08:00"


@pytest.fixture(scope="module")
def server():
    with SampleTushareServer(port=0) as running:
        yield running


@pytest.fixture(autouse=True)
def fault_free(server: SampleTushareServer):
    server.reset()
    yield
    server.reset()


def make_client(url: str, token: str = DEFAULT_TOKEN, timeout: float = 10) -> DataApi:
    client = DataApi(token, timeout=timeout)
    client._DataApi__http_url = url  # type: ignore[attr-defined]
    return client


@pytest.fixture
def client(server: SampleTushareServer) -> DataApi:
    return make_client(server.url)


@pytest.fixture
def control(server: SampleTushareServer) -> Callable[..., requests.Response]:
    def call(method: str, path: str, **kwargs: object) -> requests.Response:
        return requests.request(method, f"{server.control_url}/{path}", timeout=5, **kwargs)
    return call


def raw_call(server: SampleTushareServer, api: str, token: str = DEFAULT_TOKEN,
             fields: str = "", **params: object) -> requests.Response:
    body = {"api_name": api, "token": token, "params": params, "fields": fields}
    return requests.post(f"{server.url}/{api}", json=body, timeout=10)


def sessions(client: DataApi, start: str, end: str) -> list[str]:
    """The trading days in [start, end], oldest first."""
    return list(client.trade_cal(start_date=start, end_date=end, is_open="1")["cal_date"])[::-1]


def listings(client: DataApi) -> pd.DataFrame:
    """Every symbol ever listed as of the server's now: L, D and P."""
    fields = "ts_code,list_status,list_date,delist_date"
    return pd.concat([client.stock_basic(list_status=s, fields=fields) for s in "LDP"],
                     ignore_index=True)


def alive_on(listed: pd.DataFrame, day: str) -> set[str]:
    """The symbols listed and not delisted on `day`."""
    delisted = listed["delist_date"].notna() & (listed["delist_date"] <= day)
    return set(listed.loc[(listed["list_date"] <= day) & ~delisted, "ts_code"])


# -- daily

def test_daily_for_a_trading_day_returns_the_whole_market_with_tushare_columns(client):
    day = client.daily(trade_date="20251009")
    assert list(day.columns) == DAILY_FIELDS
    assert len(day) >= 5000
    assert day["ts_code"].is_unique
    assert (day["trade_date"] == "20251009").all()
    assert {code[-3:] for code in day["ts_code"]} == {".SH", ".SZ", ".BJ"}
    for column in DAILY_FIELDS[2:]:
        assert day[column].dtype == np.float64, column


def test_daily_values_are_json_floats_and_dates_are_yyyymmdd_strings(server):
    answer = raw_call(server, "daily", trade_date="20251009").json()
    assert answer["code"] == 0 and answer["msg"] == ""
    row = answer["data"]["items"][0]
    assert isinstance(row[1], str) and row[1] == "20251009"
    assert all(isinstance(value, float) for value in row[2:])


def test_daily_pre_close_is_the_previous_trading_days_close(client):
    today = client.daily(trade_date="20251009")
    before = client.daily(trade_date="20250930")  # the last session before National Day
    both = today.merge(before[["ts_code", "close"]], on="ts_code", suffixes=("", "_before"))
    assert len(both) > 0.98 * len(today)
    assert (both["pre_close"] == both["close_before"]).all()


def test_daily_prices_are_internally_consistent(client):
    day = client.daily(trade_date="20251009")
    prices = day[["open", "high", "low", "close", "pre_close"]]
    assert (prices > 0).all().all()
    assert (day["high"] >= day[["open", "close"]].max(axis=1)).all()
    assert (day["low"] <= day[["open", "close"]].min(axis=1)).all()
    assert (prices.round(2) == prices).all().all()
    assert np.allclose(day["change"], (day["close"] - day["pre_close"]).round(2), atol=1e-9)
    assert np.allclose(day["pct_chg"], (day["change"] / day["pre_close"] * 100).round(4), atol=1e-9)
    assert (day["vol"] > 0).all() and (day["amount"] > 0).all()
    assert (day["vol"].round(2) == day["vol"]).all()
    assert (day["amount"].round(3) == day["amount"]).all()


def test_daily_is_identical_across_calls(client):
    first = client.daily(trade_date="20251009")
    second = client.daily(trade_date="20251009")
    pd.testing.assert_frame_equal(first, second)


def test_daily_on_a_non_trading_day_is_empty_but_not_an_error(client):
    holiday = client.daily(trade_date="20251003")
    assert holiday.empty
    assert list(holiday.columns) == DAILY_FIELDS


def test_daily_paging_with_limit_and_offset_reassembles_the_day(client):
    whole = client.daily(trade_date="20251009")
    pages = [client.daily(trade_date="20251009", limit=2000, offset=offset)
             for offset in range(0, len(whole), 2000)]
    assert [len(p) for p in pages] == [2000, 2000, len(whole) - 4000]
    assert client.daily(trade_date="20251009", limit=2000, offset=len(whole)).empty
    pd.testing.assert_frame_equal(pd.concat(pages, ignore_index=True), whole)


def test_daily_caps_a_call_at_6000_rows(client):
    month = client.daily(start_date="20250901", end_date="20250930", limit=10_000)
    assert len(month) == 6000
    assert month["trade_date"].iloc[0] == "20250930"  # newest first, like tushare


def test_daily_per_stock_query_returns_one_row_per_trading_day(client):
    sessions = client.trade_cal(start_date="20250801", end_date="20251031", is_open="1")
    bars = client.daily(ts_code="000001.SZ", start_date="20250801", end_date="20251031")
    assert list(bars["trade_date"]) == list(sessions["cal_date"])  # both newest first
    assert (bars["ts_code"] == "000001.SZ").all()
    # The per-stock path and the whole-day path agree on every number.
    whole_day = client.daily(trade_date="20251009").set_index("ts_code").loc["000001.SZ"]
    one = bars.set_index("trade_date").loc["20251009"]
    assert one[DAILY_FIELDS[2:]].tolist() == whole_day[DAILY_FIELDS[2:]].tolist()


def test_daily_accepts_several_comma_separated_codes(client):
    bars = client.daily(ts_code="000001.SZ,600000.SH", start_date="20251009", end_date="20251010")
    assert sorted(zip(bars["trade_date"], bars["ts_code"])) == [
        ("20251009", "000001.SZ"), ("20251009", "600000.SH"),
        ("20251010", "000001.SZ"), ("20251010", "600000.SH")]


def test_suspended_symbol_has_no_row_and_resumes_from_its_last_close(client):
    # 600000.SH is suspended on one day in this range (the data are deterministic).
    sessions = list(client.trade_cal(start_date="20250801", end_date="20251031",
                                     is_open="1")["cal_date"])[::-1]
    bars = client.daily(ts_code="600000.SH", start_date="20250801", end_date="20251031")
    bars = bars.set_index("trade_date")
    missing = [d for d in sessions if d not in bars.index]
    assert len(missing) == 1
    gap = sessions.index(missing[0])
    assert bars.loc[sessions[gap + 1], "pre_close"] == bars.loc[sessions[gap - 1], "close"]


def test_about_half_to_one_percent_of_listed_symbols_are_suspended_a_day(client, server):
    listings = server.market.stock_basic(np.datetime64("2025-10-09"))
    listed = (listings["list_status"] == "L").sum()
    traded = len(client.daily(trade_date="20251009"))
    assert 0.004 <= 1 - traded / listed <= 0.012


# -- trade_cal, stock_basic, errors

def test_trade_cal_closes_national_day_and_lists_newest_first(client):
    cal = client.trade_cal(exchange="SSE", start_date="20250928", end_date="20251012")
    assert list(cal.columns) == ["exchange", "cal_date", "is_open", "pretrade_date"]
    assert list(cal["cal_date"]) == sorted(cal["cal_date"], reverse=True)
    assert len(cal) == 15
    assert list(cal.loc[cal["is_open"] == 1, "cal_date"]) == [
        "20251010", "20251009", "20250930", "20250929"]
    assert cal.set_index("cal_date").loc["20251009", "pretrade_date"] == "20250930"


def test_trade_cal_counts_weekdays_as_open_beyond_the_recorded_holidays(client):
    cal = client.trade_cal(start_date="20270104", end_date="20270110")
    assert list(cal["is_open"]) == [0, 0, 1, 1, 1, 1, 1]


def test_stock_basic_lists_a_universe_that_grows_slowly(client):
    basic = client.stock_basic()
    assert list(basic.columns) == ["ts_code", "symbol", "name", "area", "industry", "market",
                                   "list_date"]
    assert 5000 <= len(basic) <= 5500 and basic["ts_code"].is_unique
    assert {c[:3] for c in basic["ts_code"]} >= {"600", "601", "603", "688", "000", "002", "300"}
    assert (basic["ts_code"].str[:6] == basic["symbol"]).all()
    listed = basic["list_date"]
    assert (listed < "20150101").mean() > 0.5
    assert 0 < (listed >= "20200101").mean() < 0.4


WEIRD_VALUES = [None, "", -1, 1.5, 10**20, "abc", [1, 2], {"a": 1}, True, "2025-13-45", ",,,"]
PARAMS = ["ts_code", "trade_date", "start_date", "end_date", "limit", "offset", "list_status",
          "exchange", "market", "suspend_type", "is_open"]


def test_no_params_of_any_shape_give_a_server_error(server):
    for api in ["daily", "adj_factor", "daily_basic", "suspend_d", "stock_basic", "trade_cal"]:
        for name in PARAMS:
            for value in WEIRD_VALUES:
                # Around one stock and a few days, so each answer is small.
                params = {"ts_code": "000001.SZ", "start_date": "20251001",
                          "end_date": "20251010", name: value}
                answer = server.answer(api, {"token": DEFAULT_TOKEN, "params": params,
                                             "fields": value})
                assert answer.status == 200, (api, name, value)
                assert json.loads(answer.body)["code"] in (0, 40002), (api, name, value)
    for body in [{"params": [1]}, {"token": 5}, {"token": DEFAULT_TOKEN, "params": "x"}]:
        answer = requests.post(f"{server.url}/daily", json=body, timeout=10)
        assert answer.status_code == 200 and answer.json()["code"] in (40101, 40002)


def test_wrong_token_is_refused_with_tushares_message(server):
    with pytest.raises(Exception, match="token不对"):
        make_client(server.url, token="not-the-token").daily(trade_date="20251009")


def test_unknown_api_answers_code_40001(server, client):
    assert raw_call(server, "no_such_api").json()["code"] == 40001
    with pytest.raises(Exception, match="接口名"):
        client.query("no_such_api")


# -- adj_factor and prices across ex-dates

def test_adj_factor_hand_checked_example_10_for_10_bonus_of_002615_on_20250610(client):
    # 002615.SZ's first ex-date: 10送10 and a 3.4% cash dividend, so the factor steps
    # from 1.000 to round(2 / (1 - 0.0343), 3) = 2.071 and the price halves.
    window = dict(ts_code="002615.SZ", start_date="20250606", end_date="20250611")
    factors = client.adj_factor(**window).set_index("trade_date")["adj_factor"]
    assert factors.to_dict() == {"20250611": 2.071, "20250610": 2.071, "20250609": 1.0,
                                 "20250606": 1.0}
    bars = client.daily(**window).set_index("trade_date")
    assert bars.loc["20250609", "close"] == 17.14
    # pre_close on the ex-date is the ex-right reference price: 17.14 * 1.000 / 2.071.
    assert bars.loc["20250610", "pre_close"] == 8.28 == round(17.14 * 1.0 / 2.071, 2)
    assert bars.loc["20250610", "close"] == 8.37
    assert bars.loc["20250610", "pct_chg"] == 1.087  # (8.37 - 8.28) / 8.28, not -51%
    # Backward-adjusted (hfq = price * factor): 17.14 -> 8.37 * 2.071 = 17.33, +1.1%.
    assert round(8.37 * 2.071, 4) == 17.3343
    # Forward-adjusted (qfq = price * factor / latest factor 2.071): 17.14 -> 8.28 before.
    assert round(17.14 * 1.0 / 2.071, 2) == 8.28
    shares = client.daily_basic(**window, fields="trade_date,total_share").set_index(
        "trade_date")["total_share"]
    assert shares["20250609"] == 24631.2768 and shares["20250610"] == 49262.5537  # doubled


def test_adj_factor_starts_at_one_on_the_listing_day_and_only_steps_up(client):
    recent = client.stock_basic(list_status="L", fields="ts_code,list_date")
    recent = recent[(recent["list_date"] >= "20130101") & (recent["list_date"] <= "20200101")]
    steps = 0
    for code, listed in recent.sample(25, random_state=7).itertuples(index=False):
        history = client.adj_factor(ts_code=code, end_date="20251231")  # < 6000 rows
        factors = history["adj_factor"].to_numpy()[::-1]  # oldest first
        assert history["trade_date"].iloc[-1] == listed
        assert factors[0] == 1.0
        assert (np.diff(factors) >= 0).all()
        assert (np.round(factors, 3) == factors).all()  # 3 decimals, as tushare
        steps += int((np.diff(factors) > 0).sum())
    assert 25 <= steps <= 25 * 13  # a few ex-dates a stock over 6-13 years


def test_prices_are_continuous_when_adjusted_across_ex_dates(client):
    days = sessions(client, "20250527", "20250620")  # in the dividend season
    bars = pd.concat([client.daily(trade_date=d) for d in days], ignore_index=True)
    factors = pd.concat([client.adj_factor(trade_date=d) for d in days], ignore_index=True)
    both = bars.merge(factors, on=["ts_code", "trade_date"], how="left")
    assert both["adj_factor"].notna().all()  # every bar has its factor
    both = both.sort_values(["ts_code", "trade_date"], ignore_index=True)
    before = both.groupby("ts_code")[["close", "adj_factor"]].shift(1)  # the last traded day
    pairs = both.assign(prev_close=before["close"], prev_factor=before["adj_factor"]).dropna(
        subset=["prev_close"])

    same = pairs[pairs["adj_factor"] == pairs["prev_factor"]]
    assert (same["pre_close"] == same["prev_close"]).all()

    ex = pairs[pairs["adj_factor"] != pairs["prev_factor"]]
    assert len(ex) >= 100 and (ex["adj_factor"] / ex["prev_factor"] > 1.4).sum() >= 5
    assert (ex["adj_factor"] > ex["prev_factor"]).all()
    splits = ex[ex["adj_factor"] / ex["prev_factor"] > 1.15]
    assert (splits["close"] < splits["prev_close"] * 0.9).all()  # unadjusted prices drop
    reference = (ex["prev_close"] * (ex["prev_factor"] / ex["adj_factor"])).round(2)
    assert (ex["pre_close"] == reference).all()
    # hfq close(t) / hfq close(t-1) is the day's real move, up to pre_close's rounding.
    hfq_move = ex["close"] * ex["adj_factor"] / (ex["prev_close"] * ex["prev_factor"])
    assert ((hfq_move - (1 + ex["pct_chg"] / 100)).abs() <= 0.006 / ex["pre_close"] + 1e-6).all()
    assert (hfq_move.between(0.85, 1.15)).all()
    # qfq divides by the latest factor: the same moves, today's price on the last day.
    latest = both.groupby("ts_code")["adj_factor"].transform("last")
    qfq = both["close"] * both["adj_factor"] / latest
    last_day = both["trade_date"] == days[-1]
    assert np.allclose(qfq[last_day], both.loc[last_day, "close"], rtol=1e-12, atol=0)


# -- daily_basic

def test_daily_basic_has_a_row_exactly_for_each_bar_with_the_same_close(client):
    for day in ["20100104", "20180718", "20250610", "20251009"]:
        bars = client.daily(trade_date=day).set_index("ts_code")
        basic = client.daily_basic(trade_date=day).set_index("ts_code")
        assert sorted(basic.index) == sorted(bars.index), day
        assert (basic["close"] == bars.loc[basic.index, "close"]).all()
        assert (basic["trade_date"] == day).all()


def test_daily_basic_values_follow_tushares_definitions_and_units(client):
    basic = client.daily_basic(trade_date="20251009")
    bars = client.daily(trade_date="20251009").set_index("ts_code").loc[basic["ts_code"]]
    assert list(basic.columns) == DAILY_BASIC_FIELDS
    assert (basic["total_mv"] == (basic["close"] * basic["total_share"]).round(4)).all()
    assert (basic["circ_mv"] == (basic["close"] * basic["float_share"]).round(4)).all()
    vol = bars["vol"].to_numpy()  # hands: vol*100 / (float_share*1e4) * 100%
    assert (basic["turnover_rate"].to_numpy() == np.round(vol / basic["float_share"], 4)).all()
    assert (basic["turnover_rate_f"].to_numpy() == np.round(vol / basic["free_share"], 4)).all()
    assert (basic["free_share"] <= basic["float_share"]).all()
    assert (basic["float_share"] <= basic["total_share"]).all()
    assert 0.5 < basic["turnover_rate"].median() < 5 and 10 < basic["pe"].median() < 60
    # A loss-making year has no PE (tushare sends null); most years make money.
    assert 0.03 < basic["pe"].isna().mean() < 0.3 and 0.03 < basic["pe_ttm"].isna().mean() < 0.3
    assert basic["pb"].notna().all() and basic["total_mv"].gt(0).all()
    assert basic["dv_ttm"].notna().mean() > 0.2  # payers in the last twelve months


def test_daily_basic_nulls_are_json_nulls(server):
    items = raw_call(server, "daily_basic", trade_date="20251009", fields="ts_code,pe").json()
    values = [pe for _, pe in items["data"]["items"]]
    assert None in values and all(v is None or isinstance(v, float) for v in values)


def test_shares_are_constant_between_ex_dates_and_change_on_bonus_shares(client):
    days = sessions(client, "20250527", "20250620")
    basic = pd.concat([client.daily_basic(trade_date=d, fields="ts_code,trade_date,total_share,"
                                          "float_share") for d in days], ignore_index=True)
    factors = pd.concat([client.adj_factor(trade_date=d) for d in days], ignore_index=True)
    both = basic.merge(factors, on=["ts_code", "trade_date"]).sort_values(
        ["ts_code", "trade_date"], ignore_index=True)
    before = both.groupby("ts_code")[["total_share", "float_share", "adj_factor"]].shift(1)
    changed = (both["total_share"] != before["total_share"]) & before["total_share"].notna()
    assert changed.sum() >= 5
    # Shares change only on ex-dates, by the bonus ratio, float and total alike.
    assert (both.loc[changed, "adj_factor"] > before.loc[changed, "adj_factor"]).all()
    ratio = both.loc[changed, "total_share"] / before.loc[changed, "total_share"]
    assert np.isin(ratio.round(3), [1.2, 1.3, 1.5, 1.8, 2.0]).all()
    float_ratio = both.loc[changed, "float_share"] / before.loc[changed, "float_share"]
    assert np.allclose(float_ratio, ratio, rtol=1e-6)
    # The factor includes the bonus and the cash: F's step >= the share ratio.
    steps = both.loc[changed, "adj_factor"] / before.loc[changed, "adj_factor"]
    assert (steps >= ratio * 0.999).all()


# -- listings: listed, delisted, paused

def test_stock_basic_filters_by_list_status(server, client):
    server.set_now(LATE_2026)
    fields = "ts_code,name,list_status,list_date,delist_date"
    by_status = {s: client.stock_basic(list_status=s, fields=fields) for s in "LDP"}
    assert 5000 <= len(by_status["L"]) <= 5500
    assert 100 <= len(by_status["D"]) <= 130 and 1 <= len(by_status["P"]) <= 10
    for status, frame in by_status.items():
        assert (frame["list_status"] == status).all()
    codes = [set(f["ts_code"]) for f in by_status.values()]
    assert not (codes[0] & codes[1] or codes[0] & codes[2] or codes[1] & codes[2])
    delisted = by_status["D"]
    assert delisted["delist_date"].notna().all()
    assert (delisted["delist_date"] > delisted["list_date"]).all()
    assert (delisted["delist_date"] <= "20261102").all()
    assert by_status["L"]["delist_date"].isna().all() and by_status["P"]["delist_date"].isna().all()
    assert (delisted["delist_date"] >= "20190101").mean() > 0.4  # more delistings lately
    assert pd.concat(by_status.values())["name"].is_unique
    assert client.stock_basic().equals(client.stock_basic(list_status="L"))


def test_stock_basic_status_follows_the_servers_now(server, client):
    server.set_now("2010-01-04T09:00:00+08:00")
    early = {s: len(client.stock_basic(list_status=s)) for s in "LDP"}
    server.set_now(LATE_2026)
    late = {s: len(client.stock_basic(list_status=s)) for s in "LDP"}
    assert early["L"] < late["L"] and early["D"] < late["D"]
    assert 0 < early["D"] < 30


def test_stock_basic_ts_code_exchange_and_market_filters_keep_working(server, client):
    server.set_now(LATE_2026)
    delisted = client.stock_basic(list_status="D")["ts_code"].iloc[0]
    pair = f"000001.SZ,600000.SH,{delisted}"
    assert sorted(client.stock_basic(ts_code=pair)["ts_code"]) == ["000001.SZ", "600000.SH"]
    assert list(client.stock_basic(ts_code=pair, list_status="D")["ts_code"]) == [delisted]
    for exchange, suffix in [("SSE", ".SH"), ("SZSE", ".SZ"), ("BSE", ".BJ")]:
        listed = client.stock_basic(exchange=exchange, fields="ts_code,exchange")
        assert len(listed) > 100 and listed["ts_code"].str.endswith(suffix).all()
        assert (listed["exchange"] == exchange).all()
    star = client.stock_basic(market="科创板")
    assert len(star) > 100 and star["ts_code"].str.startswith("688").all()
    assert client.stock_basic(exchange="NYSE").empty


def test_stock_basic_default_fields_are_unchanged(client):
    assert list(client.stock_basic().columns) == ["ts_code", "symbol", "name", "area", "industry",
                                                  "market", "list_date"]


# -- suspensions, bars, factors and listings agree

def check_symbol(client: DataApi, code: str, list_date: str, delist_date: str | None,
                 start: str, end: str) -> int:
    """For one symbol over [start, end]: factors every session it is listed; a bar
    iff no S row; daily_basic iff a bar; R on the first bar after an S. Returns the
    sessions checked."""
    days = sessions(client, start, end)
    alive = [d for d in days if d >= list_date and (delist_date is None or d < delist_date)]
    window = dict(ts_code=code, start_date=start, end_date=end)
    bars = set(client.daily(**window)["trade_date"])
    basics = set(client.daily_basic(**window, fields="trade_date")["trade_date"])
    factors = list(client.adj_factor(**window)["trade_date"])[::-1]
    suspended = client.suspend_d(**window)
    halted = set(suspended.loc[suspended["suspend_type"] == "S", "trade_date"])
    resumed = set(suspended.loc[suspended["suspend_type"] == "R", "trade_date"])
    assert factors == alive, code
    assert bars.isdisjoint(halted) and bars | halted == set(alive), code
    assert basics == bars, code
    assert resumed <= bars, code
    for day in resumed:
        before = days.index(day) - 1
        assert before < 0 or days[before] in halted, (code, day)
    for before, day in zip(alive, alive[1:]):
        if before in halted and day in bars:
            assert day in resumed, (code, day)
    return len(alive)


def test_delisted_symbols_have_no_data_from_their_delist_date_on(server, client):
    server.set_now(LATE_2026)
    delisted = client.stock_basic(list_status="D", fields="ts_code,list_date,delist_date")
    checked = 0
    for code, listed, gone in delisted.itertuples(index=False):
        start = (pd.Timestamp(gone) - pd.Timedelta(days=60)).strftime("%Y%m%d")
        end = (pd.Timestamp(gone) + pd.Timedelta(days=20)).strftime("%Y%m%d")
        checked += check_symbol(client, code, listed, gone, start, end)
    assert checked > 100 * 30


def test_paused_listings_are_suspended_every_session_without_bars(server, client):
    server.set_now(LATE_2026)
    paused = client.stock_basic(list_status="P", fields="ts_code,list_date")
    for code, listed in paused.itertuples(index=False):
        check_symbol(client, code, listed, None, "20261001", "20261102")
        assert client.daily(ts_code=code, start_date="20261001", end_date="20261102").empty
        halted = client.suspend_d(ts_code=code, start_date="20261001", end_date="20261102",
                                  suspend_type="S")
        assert len(halted) == len(sessions(client, "20261001", "20261102"))


def test_listed_symbols_bars_match_their_suspensions_over_a_year(server, client):
    server.set_now(LATE_2026)
    listed = client.stock_basic(fields="ts_code,list_date")
    checked = 0
    for code, list_date in listed.sample(30, random_state=3).itertuples(index=False):
        checked += check_symbol(client, code, list_date, None, "20240601", "20250630")
    new = listed[listed["list_date"].between("20240801", "20260930")]
    for code, list_date in new.sample(10, random_state=3).itertuples(index=False):
        start = (pd.Timestamp(list_date) - pd.Timedelta(days=10)).strftime("%Y%m%d")
        checked += check_symbol(client, code, list_date, None, start, "20261102")
    assert checked > 30 * 200


def test_whole_market_days_agree_across_datasets_and_listings(server, client):
    server.set_now(LATE_2026)
    everyone = listings(client)
    for day in ["20080515", "20150708", "20200312", "20240613", "20250610", "20251009"]:
        alive = alive_on(everyone, day)
        bars = set(client.daily(trade_date=day)["ts_code"])
        factors = client.adj_factor(trade_date=day)
        suspended = client.suspend_d(trade_date=day)
        halted = set(suspended.loc[suspended["suspend_type"] == "S", "ts_code"])
        resumed = set(suspended.loc[suspended["suspend_type"] == "R", "ts_code"])
        previous = client.trade_cal(start_date=day, end_date=day)["pretrade_date"].iloc[0]
        before = client.suspend_d(trade_date=previous, suspend_type="S")
        assert set(factors["ts_code"]) == alive and factors["ts_code"].is_unique, day
        assert bars.isdisjoint(halted) and bars | halted == alive, day
        assert resumed == bars & set(before["ts_code"]), day
        assert set(client.daily_basic(trade_date=day, fields="ts_code")["ts_code"]) == bars
        assert 0.003 < len(halted) / len(alive) < 0.02, day


def test_suspend_d_for_one_stock_and_its_filters(client):
    # 600000.SH misses one session in Aug-Oct 2025 (see the daily test above).
    window = dict(ts_code="600000.SH", start_date="20250801", end_date="20251031")
    both = client.suspend_d(**window)
    assert list(both.columns) == ["ts_code", "trade_date", "suspend_timing", "suspend_type"]
    assert list(both["suspend_type"]) == ["R", "S"]  # newest first
    assert both["suspend_timing"].isna().all()  # whole-day suspensions
    halted = client.suspend_d(**window, suspend_type="S")
    resumed = client.suspend_d(**window, suspend_type="R")
    days = sessions(client, "20250801", "20251031")
    assert days[days.index(halted["trade_date"].iloc[0]) + 1] == resumed["trade_date"].iloc[0]
    assert client.suspend_d(**window, suspend_type="X").empty
    several = client.suspend_d(ts_code="600000.SH,000001.SZ", start_date="20250101",
                               end_date="20251031")
    assert set(several["ts_code"]) <= {"600000.SH", "000001.SZ"} and len(several) > 2
    assert list(several["trade_date"]) == sorted(several["trade_date"], reverse=True)


def test_suspend_d_without_a_date_serves_the_newest_days_first(client):
    newest = client.suspend_d()
    assert len(newest) == 5000  # the cap: the history is longer
    assert list(newest["trade_date"]) == sorted(newest["trade_date"], reverse=True)


# -- row caps and paging

@pytest.mark.parametrize("api, params, cap", [
    ("daily", {"start_date": "20250901", "end_date": "20250930"}, 6000),
    ("daily_basic", {"start_date": "20250901", "end_date": "20250930"}, 6000),
    ("adj_factor", {"start_date": "20250901", "end_date": "20250930"}, 6000),
    ("suspend_d", {"start_date": "20200101", "end_date": "20251231"}, 5000),
])
def test_each_api_caps_a_call_at_tushares_row_limit(server, api, params, cap):
    data = raw_call(server, api, limit=100_000, **params).json()["data"]
    assert len(data["items"]) == cap and data["has_more"] is True
    rest = raw_call(server, api, offset=cap, limit=100_000, **params).json()["data"]
    assert rest["items"] and rest["items"][0] != data["items"][0]


def test_stock_basic_answers_the_whole_market_in_one_call(server):
    data = raw_call(server, "stock_basic", list_status="L").json()["data"]
    assert 5000 <= len(data["items"]) <= 6000 and data["has_more"] is False


def test_has_more_is_true_only_when_rows_remain(server):
    total = len(raw_call(server, "daily", trade_date="20251009").json()["data"]["items"])
    exact = raw_call(server, "daily", trade_date="20251009", limit=total).json()["data"]
    assert len(exact["items"]) == total and exact["has_more"] is False
    short = raw_call(server, "daily", trade_date="20251009", limit=total - 1).json()["data"]
    assert short["has_more"] is True
    last = raw_call(server, "daily", trade_date="20251009", limit=10, offset=total - 10).json()
    assert len(last["data"]["items"]) == 10 and last["data"]["has_more"] is False


@pytest.mark.parametrize("api", ["daily", "adj_factor", "daily_basic", "suspend_d"])
def test_offset_pages_of_a_multi_stock_range_reassemble_it(server, client, api, monkeypatch):
    # Small chunks of (stock, day) pairs, so pages start and end inside chunks and
    # whole chunks before an offset are skipped by counting their rows.
    monkeypatch.setattr("devstack.sample_data.PAIRS_PER_CHUNK", 50)
    codes = ["000001.SZ", "600000.SH", "300001.SZ"]
    window = dict(start_date="20150101", end_date="20251231")
    whole = pd.concat([client.query(api, ts_code=c, **window) for c in codes], ignore_index=True)
    whole = whole.sort_values(["trade_date", "ts_code"], ascending=[False, True],
                              ignore_index=True)
    pages, offset = [], 0
    while True:
        data = raw_call(server, api, ts_code=",".join(codes), limit=997, offset=offset,
                        **window).json()["data"]
        pages.append(pd.DataFrame(data["items"], columns=data["fields"]))
        offset += len(data["items"])
        if not data["has_more"]:
            break
    assert len(pages) > 1 or api == "suspend_d"
    pd.testing.assert_frame_equal(pd.concat(pages, ignore_index=True), whole)


@pytest.fixture(scope="module")
def capped():
    """Small caps, and `offset` ignored: the only way to everything is smaller calls."""
    caps = {"daily": 2000, "daily_basic": 2000, "adj_factor": 2000, "suspend_d": 2000}
    with SampleTushareServer(row_caps=caps, ignore_offset=True) as running:
        yield running


def test_a_capped_server_truncates_and_says_so(capped):
    first = raw_call(capped, "daily", trade_date="20251009").json()["data"]
    assert len(first["items"]) == 2000 and first["has_more"] is True
    skipped = raw_call(capped, "daily", trade_date="20251009", offset=2000).json()["data"]
    assert skipped["items"] == first["items"]  # offset is ignored
    fewer = raw_call(capped, "daily", trade_date="20251009", limit=10).json()["data"]
    assert fewer["items"] == first["items"][:10] and fewer["has_more"] is True
    assert capped.config()["row_caps"]["stock_basic"] == 6000
    assert capped.config()["ignore_offset"] == ["adj_factor", "daily", "daily_basic",
                                                "stock_basic", "suspend_d", "trade_cal"]


@pytest.mark.parametrize("api", ["daily", "daily_basic", "adj_factor"])
def test_a_capped_day_is_complete_when_split_by_ts_code_batches(capped, client, api):
    whole = client.query(api, trade_date="20250610")  # the default server: one call
    capped_client = make_client(capped.url)
    codes = list(listings(capped_client)["ts_code"])
    parts = []
    for lo in range(0, len(codes), 1500):
        batch = ",".join(codes[lo:lo + 1500])
        answer = raw_call(capped, api, ts_code=batch, trade_date="20250610").json()["data"]
        assert answer["has_more"] is False
        parts.append(capped_client.query(api, ts_code=batch, trade_date="20250610"))
    joined = pd.concat(parts, ignore_index=True).sort_values("ts_code", ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole.sort_values("ts_code", ignore_index=True))


def test_honoured_offsets_page_through_a_capped_answer(client):
    with SampleTushareServer(row_caps=2000) as small:
        pages, offset = [], 0
        while True:
            data = raw_call(small, "adj_factor", trade_date="20251009", offset=offset).json()["data"]
            pages += data["items"]
            offset += len(data["items"])
            if not data["has_more"]:
                break
        assert len(pages) == len(client.adj_factor(trade_date="20251009")) and offset > 4000


# -- the per-minute quota

def test_quota_refuses_calls_beyond_the_limit_with_tushares_words(client):
    with SampleTushareServer(rate_limit_per_minute={"daily": 3}) as limited:
        limited.set_now("2025-10-10T09:00:00+08:00")
        quota_client = make_client(limited.url)
        for _ in range(3):
            assert len(quota_client.daily(trade_date="20251009")) > 5000
        with pytest.raises(Exception) as refused:
            quota_client.daily(trade_date="20251009")
        assert str(refused.value) == ("抱歉，您每分钟最多访问该接口3次，权限的具体详情访问："
                                      "https://tushare.pro/document/1?doc_id=108。")
        answer = raw_call(limited, "daily", trade_date="20251009").json()
        assert answer["code"] == 40203 and answer["data"] is None
        assert len(quota_client.trade_cal(start_date="20251009", end_date="20251010")) == 2


def test_quota_window_slides_and_recovers_without_waiting(client):
    with SampleTushareServer(rate_limit_per_minute=2) as limited:
        limited.set_now("2025-10-10T09:00:00+08:00")
        quota_client = make_client(limited.url)

        def served() -> bool:
            return raw_call(limited, "trade_cal", start_date="20251009",
                            end_date="20251009").json()["code"] == 0
        assert served()                    # t = 0
        limited.advance_clock(30)
        assert served()                    # t = 30
        assert not served()                # 2 in the last minute
        limited.advance_clock(29.9)
        assert not served()                # t = 59.9: the first still counts
        limited.advance_clock(0.1)
        assert served()                    # t = 60: the first has left the window
        assert not served()
        limited.advance_clock(60)
        assert served() and served() and not served()
        assert len(quota_client.daily(trade_date="20251009")) > 5000  # one number: every api


def test_quota_is_counted_per_token_and_per_api():
    with SampleTushareServer(rate_limit_per_minute={"daily": 1, "*": 2},
                             other_tokens=["second-token"]) as limited:
        limited.set_now("2025-10-10T09:00:00+08:00")

        def code(api: str, token: str = DEFAULT_TOKEN, **params: object) -> int:
            return raw_call(limited, api, token=token, **params).json()["code"]
        assert code("daily", trade_date="20251009") == 0
        assert code("daily", trade_date="20251009") == 40203
        assert code("daily", token="second-token", trade_date="20251009") == 0
        assert code("adj_factor", trade_date="20251009") == 0
        assert code("adj_factor", trade_date="20251009") == 0
        assert code("adj_factor", trade_date="20251009") == 40203
        assert code("daily", token="not-a-token", trade_date="20251009") == 40101


def test_quota_is_exact_under_concurrent_calls():
    with SampleTushareServer(rate_limit_per_minute={"trade_cal": 5}) as limited:
        def code(_: int) -> int:
            return raw_call(limited, "trade_cal", start_date="20251009",
                            end_date="20251009").json()["code"]
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(code, range(16)))
        assert sorted(codes) == [0] * 5 + [40203] * 11
        assert limited.stats()["refused"] == {"trade_cal": 11}


def test_quota_set_over_http_and_stats_give_each_calls_time_and_refusal(server, client, control):
    assert control("POST", "clock", json={"now": "2025-10-10T09:00:00+08:00"}).ok
    set_quota = control("POST", "config", json={"rate_limit_per_minute": {"daily": 2}})
    assert set_quota.ok and set_quota.json()["rate_limit_per_minute"] == {"daily": 2}
    client.daily(trade_date="20251009")
    assert control("POST", "clock", json={"advance": 1.5}).json()["mode"] == "frozen"
    client.daily(trade_date="20251009")
    with pytest.raises(Exception, match="每分钟最多访问该接口2次"):
        client.daily(trade_date="20251009")
    stats = control("GET", "stats").json()
    start = pd.Timestamp("2025-10-10T09:00:00+08:00").timestamp()
    assert stats["timeline"]["daily"] == [
        {"at": start, "refused": False, "outcome": "ok"},
        {"at": start + 1.5, "refused": False, "outcome": "ok"},
        {"at": start + 1.5, "refused": True, "outcome": "rate_limited"}]
    assert stats["refused"] == {"daily": 1} and stats["calls"] == {"daily": 3}
    assert control("DELETE", "quota").ok  # forget the window: calls pass again
    assert len(client.daily(trade_date="20251009")) > 5000
    assert control("DELETE", "config").json()["rate_limit_per_minute"] == {}


# -- permissions

def test_a_denied_api_answers_tushares_no_permission_words(server, client):
    server.configure(denied_apis=["daily_basic"])
    with pytest.raises(Exception) as refused:
        client.daily_basic(trade_date="20251009")
    assert str(refused.value) == MSG_NO_PERMISSION
    assert raw_call(server, "daily_basic", trade_date="20251009").json()["code"] == 40203
    assert len(client.daily(trade_date="20251009")) > 5000
    assert [c["outcome"] for c in server.stats()["timeline"]["daily_basic"]] == [
        "no_permission", "no_permission"]


def test_permissions_set_over_http(server, client, control):
    denied = control("POST", "config", json={"denied_apis": ["adj_factor", "suspend_d"]})
    assert denied.ok and denied.json()["denied_apis"] == ["adj_factor", "suspend_d"]
    for api in ("adj_factor", "suspend_d"):
        with pytest.raises(Exception, match="没有访问该接口的权限"):
            client.query(api, trade_date="20251009")
    assert control("POST", "config", json={"denied_apis": []}).ok
    assert len(client.adj_factor(trade_date="20251009")) > 5000


def test_a_denied_call_does_not_use_the_quota_up():
    with SampleTushareServer(rate_limit_per_minute=1, denied_apis=["daily"]) as server:
        server.set_now("2025-10-10T09:00:00+08:00")
        assert raw_call(server, "daily", trade_date="20251009").json()["msg"] == MSG_NO_PERMISSION
        server.configure(denied_apis=[])
        assert raw_call(server, "daily", trade_date="20251009").json()["code"] == 0


# -- publication time and the server's clock

@pytest.mark.parametrize("api", ["daily", "adj_factor", "daily_basic", "suspend_d"])
def test_a_days_data_appears_at_17_shanghai_time(server, client, api):
    server.set_now("2025-10-09T16:59:59+08:00")
    assert client.query(api, trade_date="20251009").empty
    assert not client.query(api, trade_date="20250930").empty
    week = client.query(api, start_date="20250925")  # through today, newest first
    assert not week.empty and week["trade_date"].max() == "20250930"
    server.set_now("2025-10-09T17:00:00+08:00")
    assert not client.query(api, trade_date="20251009").empty
    assert client.query(api, trade_date="20251010").empty  # the future: nothing yet
    assert server.published_through() == "20251009"


def test_publish_time_and_clock_are_set_over_http(server, client, control):
    assert control("POST", "config", json={"publish_time": "15:30"}).ok
    clock = control("POST", "clock", json={"now": "2025-10-09 15:30:00"}).json()  # Shanghai
    assert clock == {"now": "2025-10-09T15:30:00+08:00", "mode": "frozen",
                     "epoch": pd.Timestamp("2025-10-09T15:30:00+08:00").timestamp()}
    assert len(client.daily(trade_date="20251009")) > 5000
    assert control("POST", "clock", json={"advance": -1}).ok
    assert client.daily(trade_date="20251009").empty
    assert control("DELETE", "clock").json()["mode"] == "real"
    assert abs(control("GET", "clock").json()["epoch"] - time.time()) < 5
    assert len(client.daily(trade_date="20251009")) > 5000


def test_a_ticking_clock_runs_on_from_the_time_set(server):
    server.set_now("2025-10-09T16:59:59.9+08:00", ticking=True)
    start = server.clock.now()
    time.sleep(0.2)
    assert server.clock.now() > start and server.clock.describe()["mode"] == "ticking"
    assert server.published_through() == "20251009"


def test_the_default_clock_is_the_real_one_and_injectable():
    with SampleTushareServer(clock=lambda: 1760000000.0) as fixed:  # 2025-10-09 16:53 Shanghai
        assert fixed.clock.now() == 1760000000.0
        assert fixed.published_through() == "20250930"
    assert abs(SampleTushareServer().clock.now() - time.time()) < 5


# -- settings

def test_settings_are_validated_and_reset(server, control):
    for bad in [{"row_caps": {"daily": 0}}, {"row_caps": {"nope": 10}},
                {"rate_limit_per_minute": {"daily": -1}}, {"publish_time": "25:00"},
                {"denied_apis": ["no_such_api"]}, {"speed": "fast"}, {"ignore_offset": ["x"]}]:
        refused = control("POST", "config", json=bad)
        assert refused.status_code == 400 and refused.json()["error"], bad
    assert control("POST", "clock", json={"now": "soon"}).status_code == 400
    assert control("POST", "clock", json={}).status_code == 400
    with pytest.raises(ValueError):
        server.configure(row_caps="many")
    changed = control("POST", "config", json={"row_caps": 100, "ignore_offset": ["daily"]}).json()
    assert changed["row_caps"]["daily"] == 100 and changed["row_caps"]["trade_cal"] is None
    assert control("POST", "reset").ok
    assert control("GET", "config").json() == {
        "rate_limit_per_minute": {}, "denied_apis": [], "ignore_offset": [], "publish_time": "17:00",
        "row_caps": {"daily": 6000, "daily_basic": 6000, "adj_factor": 6000, "suspend_d": 5000,
                     "stock_basic": 6000, "trade_cal": None}}


# -- faults

def test_rate_limit_fault_raises_the_per_minute_message(server, client):
    server.add_fault("rate_limit")
    with pytest.raises(Exception, match="每分钟最多访问") as raised:
        client.daily(trade_date="20251009")
    assert str(raised.value) == MSG_RATE_LIMIT
    assert len(client.daily(trade_date="20251009")) > 5000  # times=1: the next call is served


@pytest.mark.parametrize("kind, message", [("bad_token", "您的token不对，请确认。"),
                                           ("no_permission", MSG_NO_PERMISSION)])
def test_refusal_faults_raise_tushares_messages(server, client, kind, message):
    server.add_fault(kind)
    with pytest.raises(Exception) as raised:
        client.daily(trade_date="20251009")
    assert str(raised.value) == message


@pytest.mark.parametrize("kind, status", [("http_500", 500), ("http_502", 502)])
def test_http_error_faults_give_the_client_an_empty_frame(server, client, kind, status):
    server.add_fault(kind)
    assert client.daily(trade_date="20251009").empty
    server.add_fault(kind)
    answer = raw_call(server, "daily", trade_date="20251009")
    assert answer.status_code == status and answer.text


def test_empty_fault_answers_no_rows_on_a_trading_day(server, client):
    server.add_fault("empty")
    day = client.daily(trade_date="20251009")
    assert day.empty and list(day.columns) == DAILY_FIELDS


def test_timeout_fault_makes_a_shorter_client_timeout_raise(server):
    server.add_fault("timeout", delay=2)
    impatient = make_client(server.url, timeout=0.5)
    with pytest.raises(requests.exceptions.Timeout):
        impatient.daily(trade_date="20251009")
    assert len(impatient.daily(trade_date="20251009")) > 5000


def test_timeout_fault_answers_normally_after_the_delay(server):
    server.add_fault("timeout", delay=0.3)
    started = time.monotonic()
    assert len(make_client(server.url, timeout=5).daily(trade_date="20251009")) > 5000
    assert time.monotonic() - started >= 0.3


def test_fault_times_counts_the_calls_it_affects(server, client):
    server.add_fault("rate_limit", times=2)
    for _ in range(2):
        with pytest.raises(Exception, match="每分钟"):
            client.daily(trade_date="20251009")
    assert len(client.daily(trade_date="20251009")) > 5000
    assert server.faults() == []


def test_fault_without_times_limit_lasts_until_cleared(server, client):
    server.add_fault("http_500", times=None)
    assert all(client.daily(trade_date="20251009").empty for _ in range(3))
    server.clear_faults()
    assert not client.daily(trade_date="20251009").empty


def test_fault_targets_only_its_trade_date_and_api(server, client):
    server.add_fault("http_500", api="daily", trade_date="20251009", times=None)
    assert not client.daily(trade_date="20250930").empty
    assert not client.trade_cal(start_date="20251009", end_date="20251009").empty
    assert client.daily(trade_date="20251009").empty


def test_fault_times_is_consumed_exactly_under_concurrent_calls(server):
    server.add_fault("rate_limit", api="trade_cal", times=5)

    def code(_: int) -> int:
        return raw_call(server, "trade_cal", start_date="20251009",
                        end_date="20251009").json()["code"]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(code, range(16)))
    assert sorted(codes) == [0] * 11 + [40203] * 5


def test_add_fault_rejects_an_unknown_kind(server):
    with pytest.raises(ValueError, match="unknown fault kind"):
        server.add_fault("meltdown")


# -- stats and the HTTP control endpoints

def test_stats_count_calls_per_api_and_per_daily_trade_date(server, client):
    server.add_fault("http_500")  # faulted calls count too
    client.daily(trade_date="20251009")
    client.daily(trade_date="20251009")
    client.daily(trade_date="20251010")
    client.trade_cal(start_date="20251001", end_date="20251010")
    stats = server.stats()
    assert stats["calls"] == {"daily": 3, "trade_cal": 1}
    assert stats["by_trade_date"] == {"daily": {"20251009": 2, "20251010": 1}}
    assert stats["refused"] == {}
    assert [c["outcome"] for c in stats["timeline"]["daily"]] == ["fault:http_500", "ok", "ok"]
    assert [c["outcome"] for c in stats["timeline"]["trade_cal"]] == ["ok"]
    server.reset_stats()
    assert server.stats() == {"calls": {}, "by_trade_date": {}, "refused": {}, "timeline": {}}


def test_http_control_endpoints_set_faults_and_report_stats(server, client, control):
    added = control("POST", "faults", json={"kind": "rate_limit", "api": "daily",
                                            "trade_date": "20251009", "times": 1})
    assert added.status_code == 200 and added.json()["fault"]["trade_date"] == "20251009"
    assert len(control("GET", "faults").json()["faults"]) == 1
    with pytest.raises(Exception, match="每分钟最多访问"):
        client.daily(trade_date="20251009")
    assert control("GET", "stats").json()["by_trade_date"]["daily"] == {"20251009": 1}

    assert control("POST", "faults", json={"kind": "http_500", "times": None}).ok  # forever
    assert client.daily(trade_date="20251009").empty
    assert client.daily(trade_date="20251010").empty
    assert control("DELETE", "faults").ok
    assert not client.daily(trade_date="20251009").empty

    assert control("GET", "stats").json()["calls"]["daily"] == 4
    assert control("DELETE", "stats").ok
    assert control("GET", "stats").json() == {"calls": {}, "by_trade_date": {}, "refused": {},
                                              "timeline": {}}


def test_http_control_rejects_an_unknown_fault_kind(control):
    refused = control("POST", "faults", json={"kind": "meltdown"})
    assert refused.status_code == 400 and "unknown fault kind" in refused.json()["error"]


def test_http_timeout_fault_set_by_another_process_uses_its_delay(server, control):
    assert control("POST", "faults", json={"kind": "timeout", "delay": 1.5}).ok
    with pytest.raises(requests.exceptions.Timeout):
        make_client(server.url, timeout=0.5).daily(trade_date="20251009")


# -- lifecycle and CLI

def test_stop_is_prompt_even_while_a_timeout_fault_is_sleeping():
    with SampleTushareServer() as other:
        other.add_fault("timeout", delay=30)
        with pytest.raises(requests.exceptions.Timeout):
            make_client(other.url, timeout=0.3).daily(trade_date="20251009")
        started = time.monotonic()
    assert time.monotonic() - started < 2
    with pytest.raises(RuntimeError):
        other.url


def test_cli_prints_its_url_serves_the_same_data_and_stops_on_sigterm(client):
    process = subprocess.Popen([sys.executable, "-m", "devstack.sample_tushare", "--port", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/dataapi")
        # Another process, the same numbers: the data depend on nothing but the date.
        other = make_client(url)
        for api in ("daily", "adj_factor", "daily_basic", "suspend_d"):
            pd.testing.assert_frame_equal(other.query(api, trade_date="20250610"),
                                          client.query(api, trade_date="20250610"))
        pd.testing.assert_frame_equal(other.stock_basic(list_status="D"),
                                      client.stock_basic(list_status="D"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_flags_set_the_quota_caps_permissions_and_publish_time():
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.sample_tushare", "--port", "0", "--rate-limit", "100",
         "--row-cap", "2000", "--ignore-offset", "--deny", "suspend_d", "--deny", "adj_factor",
         "--publish-time", "18:30"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        url = process.stdout.readline().strip()
        config = requests.get(url.replace("/dataapi", "/_control/config"), timeout=5).json()
        assert config["rate_limit_per_minute"] == {"*": 100}
        assert config["row_caps"]["daily"] == 2000 and config["row_caps"]["trade_cal"] is None
        assert config["ignore_offset"] == ["adj_factor", "daily", "daily_basic", "stock_basic",
                                           "suspend_d", "trade_cal"]
        assert config["denied_apis"] == ["adj_factor", "suspend_d"]
        assert config["publish_time"] == "18:30"
        assert len(make_client(url).daily(trade_date="20251009")) == 2000
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
