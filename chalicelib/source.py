"""tushare pro as the data source: a trade date of a dataset, the listings, the calendar.

The tushare client raises a bare Exception carrying the server's message for an
error answer, and returns an empty DataFrame for a non-2xx HTTP answer, so
errors are classified here by message and by emptiness.

Every call first takes one call of the shared quota (chalicelib.quota), when one is given.

A trade date is read page by page (`limit`/`offset`). tushare caps the rows of one call
(6000 for daily); a page is taken as the last when it is shorter than a full one, and,
where the day's row count is known beforehand (the listings say it), only once that many
rows are in. When the server does not page (it answers the first rows again whatever the
offset says), the rest is fetched in calls small enough not to reach the cap: the day's
listed codes in batches, each batch split again if its answer still reaches the cap. An
answer is never silently cut at the cap; the completeness check (chalicelib.completeness)
then counts what came back.
"""
from __future__ import annotations

import logging
from datetime import date
from typing import Any, Callable

import pandas as pd
import requests
from tushare.pro.client import DataApi

from chalicelib.datasets import DAILY_FIELDS, DATASETS, STOCK_BASIC_FIELDS, DatasetSpec
from chalicelib.quota import TushareQuota
from chalicelib.secrecy import redact

log = logging.getLogger(__name__)

__all__ = ["DAILY_FIELDS", "DAILY_PAGE_SIZE", "EXCHANGE", "PermanentSourceError", "RateLimited",
           "SourceError", "TransientSourceError", "TushareSource", "classify", "make_client"]

# tushare's `daily` returns at most 6000 rows a call; the market has ~5,400 symbols.
DAILY_PAGE_SIZE = 6000
EXCHANGE = "SSE"
EXCHANGES = ("SSE", "SZSE", "BSE")
LISTING_STATUSES = ("L", "D", "P")
# Without a count to reach, a page this long that is not full is read past once more (a
# server capping lower than documented); a shorter one is taken as the last.
PROBE_PAST_ROWS = 500


class SourceError(Exception):
    """The source could not answer; `retryable` says whether trying later may help."""
    retryable = True


class TransientSourceError(SourceError):
    pass


class RateLimited(TransientSourceError):
    """tushare's per-minute quota: wait for the next minute, not a hot loop."""


class PermanentSourceError(SourceError):
    """An invalid token (`scope` "token": every call fails) or a missing permission for
    one interface (`scope` "api": that dataset fails, the others go on)."""
    retryable = False

    def __init__(self, message: str, scope: str = "token"):
        super().__init__(message)
        self.scope = scope


class PagingIgnored(Exception):
    """The server answered the first rows again for a later page: it does not page."""

    def __init__(self, page_rows: int):
        super().__init__(f"offset ignored after a page of {page_rows} rows")
        self.page_rows = page_rows


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
    if "没有访问该接口的权限" in text:
        return PermanentSourceError(f"tushare refused: {text}", scope="api")
    if "token" in text.lower():
        return PermanentSourceError(f"tushare refused: {text}", scope="token")
    return TransientSourceError(f"tushare error: {text}")


class TushareSource:
    def __init__(self, client: DataApi, token: str = "", quota: TushareQuota | None = None):
        self._client = client
        self._token = token
        self.quota = quota
        self.calls = 0  # calls made by this source (the benchmark reads it)

    def _query(self, api_name: str, _wait_s: float | None = None, **params: Any) -> pd.DataFrame:
        if self.quota is not None:
            # QuotaExhausted passes up: nothing was called.
            self.quota.acquire(api_name, max_wait_s=_wait_s)
        self.calls += 1
        try:
            return self._client.query(api_name, **params)
        except Exception as exc:  # the client raises plain Exception for API errors
            raise classify(exc, self._token) from exc

    def daily(self, day: date) -> pd.DataFrame:
        """All symbols' bars for one trade date, every page of them."""
        return self.day_rows("daily", day)

    def day_rows(self, dataset: str, day: date, codes: Callable[[], list[str]] | None = None,
                 expected: int | None = None, quota_wait_s: float | None = None) -> pd.DataFrame:
        """Every row of `dataset` for one trade date. `codes()` lists the codes to ask for
        in batches should the server not page; `expected`, how many rows the day has;
        `quota_wait_s`, how long a call may wait for the shared quota (the policy's)."""
        spec = DATASETS[dataset]
        trade_date = day.strftime("%Y%m%d")
        page_size = DAILY_PAGE_SIZE if dataset == "daily" else spec.row_cap
        try:
            frame = self._pages(spec, {"trade_date": trade_date}, page_size, expected, quota_wait_s)
        except PagingIgnored as ignored:
            if codes is None:
                raise TransientSourceError(
                    f"tushare {dataset} for {trade_date}: the answer reaches the row cap "
                    f"({ignored.page_rows}) and the server does not page") from None
            log.info("%s %s: the server does not page; fetching by code batches", dataset, trade_date)
            frame = self._by_code_batches(spec, trade_date, codes(), ignored.page_rows, quota_wait_s)
        return self._checked(spec, frame, trade_date)

    def _pages(self, spec: DatasetSpec, params: dict[str, Any], page_size: int,
               expected: int | None, wait_s: float | None = None) -> pd.DataFrame:
        pages: list[pd.DataFrame] = []
        first_key: tuple[Any, ...] | None = None
        first = 0
        offset = 0
        while True:
            page = self._query(spec.name, wait_s, **params, fields=",".join(spec.fields),
                               limit=page_size, offset=offset)
            count = len(page)
            if count == 0:
                break
            key = _first_key(page, spec.key)
            if offset and key is not None and key == first_key:
                raise PagingIgnored(first)  # the first rows again: `offset` did nothing
            pages.append(page)
            first_key = first_key or key
            offset += count
            first = first or count
            if count >= page_size:
                continue  # a full page: there may be more
            if count < first:
                break  # shorter than the pages before it: the last one
            # As long as the first page, yet not full: the server may cap lower than
            # tushare documents. Known count: read on until it is reached; unknown: once
            # more if the page is long enough for that to be likely.
            if expected is not None:
                if offset >= expected:
                    break
            elif len(pages) == 1 and count < PROBE_PAST_ROWS:
                break
        if not pages:
            return pd.DataFrame(columns=list(spec.fields))
        return pd.concat(pages, ignore_index=True) if len(pages) > 1 else pages[0]

    def _by_code_batches(self, spec: DatasetSpec, trade_date: str, codes: list[str],
                         cap: int, wait_s: float | None = None) -> pd.DataFrame:
        """A day fetched by codes, batches small enough that no answer reaches `cap` rows
        (a batch whose answer does is split in two and asked again)."""
        size = max(1, cap - 1)
        pending = [codes[i:i + size] for i in range(0, len(codes), size)]
        frames: list[pd.DataFrame] = []
        while pending:
            batch = pending.pop()
            frame = self._query(spec.name, wait_s, ts_code=",".join(batch), trade_date=trade_date,
                                fields=",".join(spec.fields))
            if len(frame) >= cap:
                if len(batch) == 1:
                    raise TransientSourceError(
                        f"tushare {spec.name} for {trade_date}: {batch[0]} alone reaches the row cap")
                half = len(batch) // 2
                pending += [batch[:half], batch[half:]]
                continue
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=list(spec.fields))
        return pd.concat(frames, ignore_index=True)

    @staticmethod
    def _checked(spec: DatasetSpec, frame: pd.DataFrame, trade_date: str) -> pd.DataFrame:
        if frame.empty and spec.expects is not None:
            # Also what the client returns for an HTTP error: never a success.
            raise TransientSourceError(f"tushare returned no {spec.name} rows for {trade_date} "
                                       "(HTTP error, or data not published yet)")
        missing = [f for f in spec.fields if f not in frame.columns]
        if missing:
            raise TransientSourceError(f"tushare {spec.name} answer lacks fields {missing}")
        frame = frame[list(spec.fields)]
        if frame.empty:
            return frame
        wrong_date = frame["trade_date"].astype(str) != trade_date
        if wrong_date.any():
            raise TransientSourceError(f"tushare {spec.name} for {trade_date} returned other dates")
        return frame.drop_duplicates(subset=list(spec.key), keep="last")

    def listings(self) -> pd.DataFrame:
        """Every listing, listed (L), delisted (D) and paused (P), with list and delist dates.

        They take several stock_basic calls in one go, and a delivery that gave up on the
        quota half-way would start over next time: with fewer calls allowed a window than
        they need, never finishing. So each of their calls may wait a whole window on top of
        the usual wait (still never past half of the day's lease)."""
        wait_s = None
        if self.quota is not None:
            policy = self.quota.policy
            wait_s = policy.window_s + policy.margin_s + policy.max_wait_s
        frames = [self._listings(status, wait_s=wait_s) for status in LISTING_STATUSES]
        frame = pd.concat(frames, ignore_index=True)
        missing = [f for f in STOCK_BASIC_FIELDS if f not in frame.columns]
        if missing:
            raise TransientSourceError(f"tushare stock_basic answer lacks fields {missing}")
        if frame.empty:
            raise TransientSourceError("tushare returned no listings")
        return frame[list(STOCK_BASIC_FIELDS)].drop_duplicates(subset="ts_code", keep="last")

    def _listings(self, status: str, exchange: str | None = None,
                  wait_s: float | None = None) -> pd.DataFrame:
        spec = DatasetSpec("stock_basic", "stock_basic", STOCK_BASIC_FIELDS, None, 6000)
        params: dict[str, Any] = {"list_status": status}
        if exchange:
            params["exchange"] = exchange
        try:
            return self._pages(spec, params, spec.row_cap, None, wait_s)
        except PagingIgnored as ignored:
            if exchange:
                raise TransientSourceError(
                    f"tushare stock_basic ({status}, {exchange}) reaches the row cap "
                    f"({ignored.page_rows}) and the server does not page") from None
            return pd.concat([self._listings(status, ex, wait_s) for ex in EXCHANGES], ignore_index=True)

    def trading_days(self, start: date, end: date) -> dict[date, bool]:
        """The exchange calendar between two dates: date -> is it a trading day."""
        frame = self._query("trade_cal", exchange=EXCHANGE, start_date=start.strftime("%Y%m%d"),
                            end_date=end.strftime("%Y%m%d"), fields="cal_date,is_open")
        if frame.empty:
            raise TransientSourceError(f"tushare returned no calendar for {start}..{end}")
        return {pd.Timestamp(str(c)).date(): bool(int(o))
                for c, o in zip(frame["cal_date"], frame["is_open"])}


def _first_key(page: pd.DataFrame, key: tuple[str, ...]) -> tuple[Any, ...] | None:
    if any(k not in page.columns for k in key):
        return None
    return tuple(page[k].iloc[0] for k in key)
