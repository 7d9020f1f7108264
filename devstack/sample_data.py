"""Deterministic sample market data behind the local tushare server: the SSE
trading calendar, ~5,500 A-share symbols (listed, paused and delisted), their
daily bars, adjustment factors, daily indicators and suspensions.

Every number is a pure function of (symbol, trading day): nothing is carried
from one day to the next, so any day can be served first, by any process, and
still agree with its neighbours. pre_close is the previous traded day's close
recomputed, not remembered.

What holds between the datasets, for a symbol s and a session t:
- alive(s, t):  list_date <= t < delist_date (a delisted symbol has nothing from its
  delist date on);
- traded(s, t): alive, its listing not paused, and not suspended that day;
- `daily` and `daily_basic` have a row iff traded; `adj_factor` has a row iff alive
  (tushare's factors include suspended days); `suspend_d` has an `S` row iff alive
  and not traded, and an `R` row on a traded day whose previous session was `S`;
- daily_basic.close == daily.close; prices and factors as in sample_actions.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import numpy as np

from devstack.sample_actions import CorporateActions
from devstack.sample_basics import DAILY_BASIC_FIELDS, Fundamentals
from devstack.sample_calendar import (FIRST_SESSION, WEEKDAY_CALENDAR_END, Calendar, Table,
                                      parse_day, yyyymmdd)
from devstack.sample_noise import SEED, normal, uniform
from devstack.sample_universe import NEVER, Universe

__all__ = ["ADJ_FACTOR_FIELDS", "DAILY_BASIC_FIELDS", "DAILY_FIELDS", "FIRST_SESSION",
           "NEVER", "SEED", "STOCK_BASIC_DEFAULT_FIELDS", "STOCK_BASIC_FIELDS", "SUSPEND_FIELDS",
           "TRADE_CAL_FIELDS", "WEEKDAY_CALENDAR_END", "Calendar", "SampleMarket", "Table",
           "Universe", "default_market", "parse_day", "yyyymmdd"]

DAILY_FIELDS = ("ts_code", "trade_date", "open", "high", "low", "close", "pre_close",
                "change", "pct_chg", "vol", "amount")
ADJ_FACTOR_FIELDS = ("ts_code", "trade_date", "adj_factor")
SUSPEND_FIELDS = ("ts_code", "trade_date", "suspend_timing", "suspend_type")
# tushare shows the first seven unless `fields` asks for more.
STOCK_BASIC_FIELDS = ("ts_code", "symbol", "name", "area", "industry", "market", "list_date",
                      "exchange", "list_status", "delist_date")
STOCK_BASIC_DEFAULT_FIELDS = STOCK_BASIC_FIELDS[:7]
TRADE_CAL_FIELDS = ("exchange", "cal_date", "is_open", "pretrade_date")

PAIRS_PER_CHUNK = 200_000  # (symbol, day) pairs generated at once for a subset of symbols
_MAX_LOOKBACK = 60  # sessions searched for the last traded close; 60 suspended days: odds ~1e-120


def _round(values: np.ndarray, decimals: int = 2) -> np.ndarray:
    return np.round(values, decimals)


def _empty(fields: tuple[str, ...]) -> Table:
    return {f: np.array([], dtype=object) for f in fields}


def _concat(tables: list[Table], fields: tuple[str, ...]) -> Table:
    if not tables:
        return _empty(fields)
    return {f: np.concatenate([t[f] for t in tables]) for f in fields}


class SampleMarket:
    """The calendar, the universe, corporate actions and every dataset over them.

    Dataset functions take equally long 1-D arrays of symbol and day indices (the
    pairs to consider) and return rows in the pairs' order; the `*_table(day)`
    functions are the whole market on one day, cached.
    """

    def __init__(self) -> None:
        self.calendar = Calendar()
        self.universe = Universe(self.calendar)
        self.actions = CorporateActions(self.calendar, self.universe)
        self.fundamentals = Fundamentals(self.calendar, self.universe, self.actions)
        self.day_table = functools.lru_cache(maxsize=128)(self._day_table)
        self.factor_table = functools.lru_cache(maxsize=64)(self._factor_table)
        self.basic_table = functools.lru_cache(maxsize=64)(self._basic_table)
        self.suspend_table = functools.lru_cache(maxsize=64)(self._suspend_table)

    def clear_caches(self) -> None:
        for cached in (self.day_table, self.factor_table, self.basic_table, self.suspend_table):
            cached.cache_clear()

    # -- state of a (symbol, day) pair
    def alive(self, sym: np.ndarray, day: np.ndarray) -> np.ndarray:
        u = self.universe
        return (u.list_index[sym] <= day) & (day < u.delist_index[sym])

    def _suspended(self, sym: np.ndarray, day: np.ndarray) -> np.ndarray:
        """A day's own suspension (0.5-1% of days), whatever the listing."""
        return uniform(self.universe.key[sym], day, 1) < self.universe.suspend_p[sym]

    def traded(self, sym: np.ndarray, day: np.ndarray) -> np.ndarray:
        u = self.universe
        return ((u.list_index[sym] <= day) & (day < u.end_index[sym])
                & ~self._suspended(sym, day))

    # -- prices
    def _level(self, sym: np.ndarray, day: np.ndarray) -> np.ndarray:
        """P(t), the price level before ex-dates (so proportional to the hfq price):
        log P = log base + beta * market(t) + two symbol cycles + iid daily noise.
        Bounded, so no symbol drifts to 0 or to the moon."""
        u, t = self.universe, day.astype(np.float64)
        market = (0.30 * np.sin(2 * np.pi * t / 1100 + 0.7) + 0.10 * np.sin(2 * np.pi * t / 260 + 2.1)
                  + 0.03 * np.sin(2 * np.pi * t / 47))
        cycles = (u.amp[sym] * np.sin(2 * np.pi * t[:, None] / u.period[sym] + u.phase[sym])).sum(1)
        log_move = u.beta[sym] * market + cycles + u.sigma[sym] * normal(u.key[sym], day, 0)
        return u.base[sym] * np.exp(log_move)

    def close(self, sym: np.ndarray, day: np.ndarray, factor: np.ndarray | None = None
              ) -> np.ndarray:
        """The unadjusted close: P(t) * F(REF) / F(t), in yuan."""
        if factor is None:
            factor = self.actions.factor_at(sym, day)
        basis = self.actions.ref_factor[sym] / factor
        return np.maximum(_round(self._level(sym, day) * basis), 0.01)

    def pre_close(self, sym: np.ndarray, day: np.ndarray, factor: np.ndarray) -> np.ndarray:
        """tushare's pre_close: the close of the last earlier session the symbol traded,
        carried to today's basis (the ex-right reference price on an ex-date)."""
        prev = day - 1
        missing = np.flatnonzero(self._suspended(sym, prev))
        back = 2
        while missing.size and back < _MAX_LOOKBACK:
            prev[missing] = day[missing] - back
            missing = missing[self._suspended(sym[missing], prev[missing])]
            back += 1
        prev_factor = self.actions.factor_at(sym, prev)
        before = self.close(sym, prev, prev_factor)
        return np.maximum(_round(before * (prev_factor / factor)), 0.01)

    def bars(self, sym: np.ndarray, day: np.ndarray) -> Table:
        """`daily` rows for the pairs that traded, with `_sym`/`_day` kept for derived tables."""
        u, actions = self.universe, self.actions
        traded = self.traded(sym, day)
        sym, day = sym[traded], day[traded]
        key = u.key[sym]
        factor = actions.factor_at(sym, day)
        close, pre = self.close(sym, day, factor), self.pre_close(sym, day, factor)
        sigma = u.sigma[sym]
        open_ = np.maximum(_round(pre * np.exp(0.4 * sigma * normal(key, day, 2))), 0.01)
        top, bottom = np.maximum(open_, close), np.minimum(open_, close)
        high = np.maximum(_round(top * (1 + 0.6 * sigma * np.abs(normal(key, day, 3)))), top)
        low = np.minimum(_round(bottom * (1 - 0.6 * sigma * np.abs(normal(key, day, 4)))), bottom)
        change = _round(close - pre)
        # Volume (hands) follows the share count, and swells on big moves as it does
        # in the real market.
        shares = actions.shares_at(sym, day) / actions.ref_shares[sym]
        vol = _round(u.vol_base[sym] * shares
                     * np.exp(0.4 * normal(key, day, 5) + 8 * np.abs(change / pre)))
        amount = _round(vol * (open_ + high + low + close) / 4 * 0.1, 3)  # hands*100*yuan/1000
        return {"ts_code": u.ts_code[sym], "trade_date": self.calendar.names[day],
                "open": open_, "high": high, "low": low, "close": close, "pre_close": pre,
                "change": change, "pct_chg": _round(change / pre * 100, 4), "vol": vol,
                "amount": amount, "_sym": sym, "_day": day}

    # -- the other datasets, by pairs
    def factors(self, sym: np.ndarray, day: np.ndarray) -> Table:
        """`adj_factor` rows: every pair alive, suspended or not."""
        alive = self.alive(sym, day)
        sym, day = sym[alive], day[alive]
        return {"ts_code": self.universe.ts_code[sym], "trade_date": self.calendar.names[day],
                "adj_factor": self.actions.factor_at(sym, day)}

    def basics(self, sym: np.ndarray, day: np.ndarray) -> Table:
        """`daily_basic` rows: exactly the pairs with a bar."""
        return self.fundamentals.table(self.bars(sym, day))

    def suspensions(self, sym: np.ndarray, day: np.ndarray) -> Table:
        """`suspend_d` rows: `S` for an alive pair without a bar, `R` for the first
        traded session after an `S` one. Whole-day suspensions only (no timing)."""
        alive = self.alive(sym, day)
        traded = self.traded(sym, day)
        halted = alive & ~traded
        resumed = traded & self.alive(sym, day - 1) & ~self.traded(sym, day - 1)
        rows = halted | resumed
        sym, day = sym[rows], day[rows]
        return {"ts_code": self.universe.ts_code[sym], "trade_date": self.calendar.names[day],
                "suspend_timing": np.full(len(sym), None, dtype=object),
                "suspend_type": np.where(halted[rows], "S", "R").astype(object)}

    # -- whole-market days (cached; one day of bars for ~5,400 symbols takes ~30 ms)
    def _everyone(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        sym = np.arange(len(self.universe))
        return sym, np.full(len(sym), day)

    def _day_table(self, day: int) -> Table:
        return self.bars(*self._everyone(day))

    def _factor_table(self, day: int) -> Table:
        return self.factors(*self._everyone(day))

    def _basic_table(self, day: int) -> Table:
        return self.fundamentals.table(self.day_table(day))

    def _suspend_table(self, day: int) -> Table:
        return self.suspensions(*self._everyone(day))

    # -- queries as tushare orders them: trade_date descending, then ts_code
    def query(self, dataset: str, sym: np.ndarray | None, days: np.ndarray, offset: int = 0,
              limit: int | None = None, keep: Callable[[Table], np.ndarray] | None = None
              ) -> Table:
        """Rows [offset, offset + limit] of `dataset` for the symbols (None: all) over
        session indices `days`: one row past the page, so the caller can tell whether
        more exist. Only rows in that window are kept, and chunks before it are only
        counted where counting is cheaper than generating; `keep` filters rows (a
        mask over a table) before they are counted."""
        dataset_rows, count, fields = _DATASETS[dataset]
        end = None if limit is None else offset + limit + 1
        tables, seen = [], 0
        for pairs, day in self._chunks(sym, np.sort(days)[::-1]):
            if keep is None and count is not None and seen < offset:
                rows = int(getattr(self, count)(*pairs).sum())
                if seen + rows <= offset:
                    seen += rows
                    continue
            table = dataset_rows(self, pairs, day)
            if keep is not None:
                mask = keep(table)
                table = {f: table[f][mask] for f in fields}
            rows = len(table[fields[0]])
            lo, hi = max(offset - seen, 0), rows if end is None else min(rows, end - seen)
            if lo < hi:
                tables.append({f: table[f][lo:hi] for f in fields})
            seen += rows
            if end is not None and seen >= end:
                break
        return _concat(tables, fields)

    def _chunks(self, sym: np.ndarray | None, days: np.ndarray
                ) -> Iterator[tuple[tuple[np.ndarray, np.ndarray], int | None]]:
        """(symbol and day index pairs, the day if they are the whole market's day)."""
        if sym is None:
            for day in days:
                yield self._everyone(int(day)), int(day)
            return
        sym = np.unique(sym)  # sorted, as the universe is sorted by ts_code
        step = max(1, PAIRS_PER_CHUNK // max(1, len(sym)))
        for lo in range(0, len(days), step):
            chunk = days[lo:lo + step]
            yield (np.tile(sym, len(chunk)), np.repeat(chunk, len(sym))), None

    def daily(self, sym: np.ndarray | None, days: np.ndarray, limit: int | None = None) -> Table:
        return self.query("daily", sym, days, limit=limit)

    # -- listings
    def stock_basic(self, as_of: np.datetime64) -> Table:
        """Every symbol listed by the day `as_of`, with its list_status then: L listed,
        P paused, D delisted (delist_date shown only once delisted)."""
        u = self.universe
        status = u.status(self.calendar.sessions_through(as_of))
        shown = status != ""
        table = {f: getattr(u, f)[shown] for f in STOCK_BASIC_FIELDS if f != "list_status"}
        table["list_status"] = status[shown]
        delisted = table["list_status"] == "D"
        table["delist_date"] = np.where(delisted, table["delist_date"], None)
        return table

    def symbol_indices(self, ts_codes: list[str]) -> np.ndarray:
        """Positions of the known codes among `ts_codes`; unknown codes are dropped."""
        codes = np.array(ts_codes, dtype=object)
        pos = np.minimum(np.searchsorted(self.universe.ts_code, codes), len(self.universe) - 1)
        return pos[self.universe.ts_code[pos] == codes]


def _by(pairs_fn: str, day_fn: str) -> Callable[[SampleMarket, tuple[np.ndarray, np.ndarray],
                                                   int | None], Table]:
    """A dataset's rows for some pairs: the cached whole-market table for a day."""
    def rows(market: SampleMarket, pairs: tuple[np.ndarray, np.ndarray], day: int | None) -> Table:
        return getattr(market, day_fn)(day) if day is not None else getattr(market, pairs_fn)(*pairs)
    return rows


# dataset -> (its rows for some pairs, which pairs have a row (None: no cheaper than the
# rows), its fields in order)
_DATASETS: dict[str, tuple[Callable[[SampleMarket, tuple[np.ndarray, np.ndarray], int | None],
                                    Table], str | None, tuple[str, ...]]] = {
    "daily": (_by("bars", "day_table"), "traded", DAILY_FIELDS),
    "adj_factor": (_by("factors", "factor_table"), "alive", ADJ_FACTOR_FIELDS),
    "daily_basic": (_by("basics", "basic_table"), "traded", DAILY_BASIC_FIELDS),
    "suspend_d": (_by("suspensions", "suspend_table"), None, SUSPEND_FIELDS),
}


@functools.lru_cache(maxsize=1)
def default_market() -> SampleMarket:
    """One shared market per process: building it takes ~0.5 s."""
    return SampleMarket()
