"""The tushare source with the real tushare client against the sample server."""
from __future__ import annotations

from datetime import date

import pytest

from chalicelib import source as source_module
from chalicelib.source import (PermanentSourceError, RateLimited, TransientSourceError,
                               TushareSource, make_client)
from chalicelib.worker import RetryPolicy


@pytest.fixture
def source(stack, db):
    client = make_client(stack.env["TUSHARE_TOKEN"], stack.env["TUSHARE_API_URL"], timeout_s=1)
    return TushareSource(client)


def test_daily_returns_one_row_per_symbol_with_tushare_fields(source):
    bars = source.daily(date(2025, 10, 9))
    assert list(bars.columns) == list(source_module.DAILY_FIELDS)
    assert len(bars) > 4000 and bars["ts_code"].is_unique
    assert set(bars["trade_date"]) == {"20251009"}


def test_daily_reads_every_page(source, monkeypatch):
    whole = source.daily(date(2025, 10, 9))
    monkeypatch.setattr(source_module, "DAILY_PAGE_SIZE", 1000)
    paged = source.daily(date(2025, 10, 9))
    assert len(paged) == len(whole)
    assert set(paged["ts_code"]) == set(whole["ts_code"])


def test_calendar_marks_the_national_day_holiday_closed(source):
    days = source.trading_days(date(2025, 9, 28), date(2025, 10, 12))
    assert sorted(d for d, is_open in days.items() if is_open) == [
        date(2025, 9, 29), date(2025, 9, 30), date(2025, 10, 9), date(2025, 10, 10)]
    assert len(days) == 15


@pytest.mark.parametrize("kind, error", [
    ("http_500", TransientSourceError), ("http_502", TransientSourceError),
    ("empty", TransientSourceError), ("timeout", TransientSourceError),
    ("rate_limit", RateLimited), ("bad_token", PermanentSourceError),
    ("no_permission", PermanentSourceError),
])
def test_faults_are_classified(source, stack, kind, error):
    stack.tushare.add_fault(kind, api="daily", times=1, delay=2)
    with pytest.raises(error) as raised:
        source.daily(date(2025, 10, 9))
    assert raised.type is error
    assert len(source.daily(date(2025, 10, 9))) > 4000  # the fault was one call only


def test_rate_limit_waits_for_the_next_minute_and_other_errors_back_off():
    policy = RetryPolicy(max_attempts=5, base_s=10, max_s=300)
    assert policy.delay_s(1, RateLimited("quota"), now=1_000_000_065.5) == 16
    assert policy.delay_s(1, RateLimited("quota"), now=1_000_000_020.0) == 61
    delays = [policy.delay_s(n, TransientSourceError("x"), now=0) for n in range(1, 8)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
