"""tushare pro as the data source: daily bars for one date, and the trading calendar.

The tushare client raises a bare Exception carrying the server's message for an
error answer, and returns an empty DataFrame for a non-2xx HTTP answer, so
errors are classified here by message and by emptiness.
"""
from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pandas as pd
import requests
from tushare.pro.client import DataApi

from chalicelib.secrecy import redact

log = logging.getLogger(__name__)

DAILY_FIELDS = ("ts_code", "trade_date", "open", "high", "low", "close", "pre_close",
                "change", "pct_chg", "vol", "amount")
# tushare's `daily` returns at most 6000 rows a call; the market has ~5,400 symbols.
DAILY_PAGE_SIZE = 6000
EXCHANGE = "SSE"


class SourceError(Exception):
    """The source could not answer; `retryable` says whether trying later may help."""
    retryable = True


class TransientSourceError(SourceError):
    pass


class RateLimited(TransientSourceError):
    """tushare's per-minute quota: wait for the next minute, not a hot loop."""


class PermanentSourceError(SourceError):
    """An invalid token or a missing permission: every day would fail the same way."""
    retryable = False


def make_client(token: str, api_url: str, timeout_s: float) -> DataApi:
    client = DataApi(token=token, timeout=timeout_s)
    # DataApi keeps its endpoint in a private attribute with no setter.
    client._DataApi__http_url = api_url  # type: ignore[attr-defined]
    return client


def classify(exc: Exception, token: str = "") -> SourceError:
    """What the error means for retrying; its text becomes a day's error, so the token goes."""
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, requests.RequestException):
        return TransientSourceError(
            redact(f"tushare request failed: {exc.__class__.__name__}: {exc}", [token]))
    text = redact(str(exc), [token])
    if "每分钟最多访问" in text or "每小时最多访问" in text or "per minute" in text:
        return RateLimited(f"tushare rate limit: {text}")
    if "token" in text.lower() or "没有访问该接口的权限" in text:
        return PermanentSourceError(f"tushare refused: {text}")
    return TransientSourceError(f"tushare error: {text}")


class TushareSource:
    def __init__(self, client: DataApi, token: str = ""):
        self._client = client
        self._token = token

    def _query(self, api_name: str, **params: Any) -> pd.DataFrame:
        try:
            return self._client.query(api_name, **params)
        except Exception as exc:  # the client raises plain Exception for API errors
            raise classify(exc, self._token) from exc

    def daily(self, day: date) -> pd.DataFrame:
        """All symbols' bars for one trade date, every page of them."""
        trade_date = day.strftime("%Y%m%d")
        pages: list[pd.DataFrame] = []
        offset = 0
        while True:
            page = self._query("daily", trade_date=trade_date, fields=",".join(DAILY_FIELDS),
                               limit=DAILY_PAGE_SIZE, offset=offset)
            pages.append(page)
            if len(page) < DAILY_PAGE_SIZE:
                break
            offset += DAILY_PAGE_SIZE
        frame = pd.concat(pages, ignore_index=True) if len(pages) > 1 else pages[0]
        if frame.empty:
            # Also what the client returns for an HTTP error: never a success.
            raise TransientSourceError(f"tushare returned no daily rows for {trade_date} "
                                       "(HTTP error, or data not published yet)")
        missing = [f for f in DAILY_FIELDS if f not in frame.columns]
        if missing:
            raise TransientSourceError(f"tushare daily answer lacks fields {missing}")
        frame = frame[list(DAILY_FIELDS)]
        wrong_date = frame["trade_date"].astype(str) != trade_date
        if wrong_date.any():
            raise TransientSourceError(f"tushare daily for {trade_date} returned other dates")
        return frame.drop_duplicates(subset="ts_code", keep="last")

    def trading_days(self, start: date, end: date) -> dict[date, bool]:
        """The exchange calendar between two dates: date -> is it a trading day."""
        frame = self._query("trade_cal", exchange=EXCHANGE, start_date=start.strftime("%Y%m%d"),
                            end_date=end.strftime("%Y%m%d"), fields="cal_date,is_open")
        if frame.empty:
            raise TransientSourceError(f"tushare returned no calendar for {start}..{end}")
        return {pd.Timestamp(str(c)).date(): bool(int(o))
                for c, o in zip(frame["cal_date"], frame["is_open"])}
