"""The sample tushare server, driven through the real `tushare` client."""
from __future__ import annotations

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
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server():
    with SampleTushareServer(port=0) as running:
        yield running


@pytest.fixture(autouse=True)
def fault_free(server: SampleTushareServer):
    server.clear_faults()
    server.reset_stats()
    yield
    server.clear_faults()


def make_client(url: str, token: str = DEFAULT_TOKEN, timeout: float = 10) -> DataApi:
    client = DataApi(token, timeout=timeout)
    client._DataApi__http_url = url  # type: ignore[attr-defined]
    return client


@pytest.fixture
def client(server: SampleTushareServer) -> DataApi:
    return make_client(server.url)


@pytest.fixture
def control(server: SampleTushareServer) -> Callable[..., requests.Response]:
    base = server.url.rsplit("/dataapi", 1)[0] + "/_control"

    def call(method: str, path: str, **kwargs: object) -> requests.Response:
        return requests.request(method, f"{base}/{path}", timeout=5, **kwargs)
    return call


def raw_call(server: SampleTushareServer, api: str, **params: object) -> requests.Response:
    body = {"api_name": api, "token": DEFAULT_TOKEN, "params": params, "fields": ""}
    return requests.post(f"{server.url}/{api}", json=body, timeout=10)


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


def test_wrong_token_is_refused_with_tushares_message(server):
    with pytest.raises(Exception, match="token不对"):
        make_client(server.url, token="not-the-token").daily(trade_date="20251009")


def test_unknown_api_answers_code_40001(server, client):
    assert raw_call(server, "no_such_api").json()["code"] == 40001
    with pytest.raises(Exception, match="接口名"):
        client.query("no_such_api")


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
        pd.testing.assert_frame_equal(make_client(url).daily(trade_date="20251009"),
                                      client.daily(trade_date="20251009"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
