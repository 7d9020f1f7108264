"""Corporate actions of the sample market: ex-dividend / ex-right days, the
cumulative adjustment factor tushare's `adj_factor` serves, and share counts.

The model (all of it a pure function of the symbol and the day):

* Events. For each symbol and each year Y up to EVENTS_LAST_YEAR, an ex-date
  happens with the symbol's payout propensity (0 for a fifth of the symbols,
  else 10%..60% a year: a few ex-dates per symbol over the years). It falls on
  the first session on or after a day between 20 May and 7 Aug of Y (the A-share
  dividend season), at least MIN_LISTED_SESSIONS after listing and before the
  symbol stops trading (its listing paused or delisted).
  An event pays a cash dividend worth y of the price (0.3%..3.8%) and, with
  probability BONUS_P, bonus/transfer shares: b new shares per share (10送2 is
  b = 0.2 ... 10送10 is b = 1.0).

* Factor. The event's step is  r = (1 + b) / (1 - y)  and the factor is
      F(t) = round(prod of r over events with ex-date <= t, 3),  F before any event = 1.0
  (tushare's adj_factor: cumulative, starts at 1.0, 3 decimals).

* Shares. M(t) = prod of (1 + b) over events with ex-date <= t multiplies the
  symbol's share counts (daily_basic) and volumes: splits change shares, cash
  dividends do not.

* Prices (SampleMarket). The symbol's smooth model price P(t) knows no ex-dates
  (it is proportional to the backward-adjusted price); the unadjusted close
  quoted by `daily` is
      close(t) = round(P(t) * F(REF) / F(t), 2)
  with REF = REFERENCE_DAY, so prices are on end-2025's share basis and drop by
  1/r on each ex-date. On an ex-date, tushare's pre_close is the ex-right
  reference price
      pre_close(t) = round(close(t-1) * (F(t-1) / F(t)), 2)
  (t-1: the last session the symbol traded; on other days this is close(t-1)
  exactly). Hence
      hfq(t) = price(t) * F(t)                 (backward adjusted, 后复权)
      qfq(t) = price(t) * F(t) / F(latest)     (forward adjusted, 前复权)
  are continuous across ex-dates: hfq close(t) / hfq close(t-1)
  = close(t) / pre_close(t) = 1 + pct_chg(t)/100, up to pre_close's rounding.
"""
from __future__ import annotations

import numpy as np

from devstack.sample_calendar import Calendar
from devstack.sample_noise import uniform
from devstack.sample_universe import Universe

EVENTS_FIRST_YEAR = 1991
EVENTS_LAST_YEAR = 2030  # bounded, so factors and price drops stay realistic far ahead
SEASON_START = (5, 20)   # month, day
SEASON_DAYS = 80
MIN_LISTED_SESSIONS = 120
BONUS_P = 0.12
# b: bonus/transfer shares per share, with weights (10送10 and 10转增5 the most common).
BONUS_RATIOS = np.array([0.2, 0.3, 0.5, 0.8, 1.0])
BONUS_WEIGHTS = np.array([0.15, 0.15, 0.3, 0.1, 0.3])
REFERENCE_DAY = np.datetime64("2025-12-31")

_DAY_BITS = np.int64(1 << 20)  # > every trading-day index; sym * _DAY_BITS + day sorts by (sym, day)


class CorporateActions:
    """Every symbol's ex-dates as one array sorted by (symbol, day), with running
    factor, share multiplier and dividend yield, looked up with one searchsorted."""

    def __init__(self, calendar: Calendar, universe: Universe) -> None:
        n = len(universe)
        years = np.arange(EVENTS_FIRST_YEAR, EVENTS_LAST_YEAR + 1)
        sym = np.repeat(np.arange(n), len(years))
        year = np.tile(years, n)
        key = universe.key[sym]
        # Some symbols never pay (propensity 0); the others in some years.
        propensity = np.where(uniform(universe.key, 0, 10) < 0.2, 0.0,
                              0.1 + 0.5 * uniform(universe.key, 0, 11))
        happens = uniform(key, year, 12) < propensity[sym]
        sym, year, key = sym[happens], year[happens], key[happens]

        month = ((year - 1970) * 12 + SEASON_START[0] - 1).astype("datetime64[M]")
        season = month.astype("datetime64[D]") + np.timedelta64(SEASON_START[1] - 1, "D")
        offset = np.floor(uniform(key, year, 13) * SEASON_DAYS).astype("timedelta64[D]")
        day = calendar.first_on_or_after(season + offset)
        valid = ((day >= universe.list_index[sym] + MIN_LISTED_SESSIONS)
                 & (day < universe.end_index[sym]) & (day < len(calendar)))
        sym, year, key, day = sym[valid], year[valid], key[valid], day[valid]

        self.yield_ = 0.003 + 0.035 * uniform(key, year, 14) ** 2
        bonus = uniform(key, year, 15) < BONUS_P
        pick = np.searchsorted(np.cumsum(BONUS_WEIGHTS), uniform(key, year, 16) * BONUS_WEIGHTS.sum())
        self.bonus = np.where(bonus, BONUS_RATIOS[np.minimum(pick, len(BONUS_RATIOS) - 1)], 0.0)
        self.step = (1.0 + self.bonus) / (1.0 - self.yield_)
        self.sym, self.day = sym, day
        self._keys = sym.astype(np.int64) * _DAY_BITS + day  # sorted: sym-major, years ascending

        # Running products per symbol: cumulative sums of logs, restarted at each symbol.
        first = np.r_[True, sym[1:] != sym[:-1]]
        starts = np.maximum.accumulate(np.where(first, np.arange(len(sym)), 0))

        def running(values: np.ndarray) -> np.ndarray:
            total = np.cumsum(values)
            return total - (total[starts] - values[starts])
        self.factor = np.round(np.exp(running(np.log(self.step))), 3)
        self.shares = np.exp(running(np.log1p(self.bonus)))
        self.cum_yield = running(self.yield_)

        ref = calendar.sessions_through(REFERENCE_DAY) - 1
        everyone = np.arange(n)
        self.ref_factor = self.factor_at(everyone, np.full(n, ref))
        self.ref_shares = self.shares_at(everyone, np.full(n, ref))

    def _last_event(self, sym: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Position of each pair's latest event on or before `day`, or -1."""
        pos = np.searchsorted(self._keys, sym.astype(np.int64) * _DAY_BITS + day, side="right") - 1
        found = pos >= 0
        found[found] = self.sym[pos[found]] == sym[found]
        return np.where(found, pos, -1)

    def _at(self, values: np.ndarray, sym: np.ndarray, day: np.ndarray, before: float) -> np.ndarray:
        pos = self._last_event(sym, np.asarray(day))
        return np.where(pos >= 0, values[np.maximum(pos, 0)], before)

    def factor_at(self, sym: np.ndarray, day: np.ndarray) -> np.ndarray:
        """F(t): tushare's adj_factor for each (symbol, day) pair."""
        return self._at(self.factor, sym, day, 1.0)

    def shares_at(self, sym: np.ndarray, day: np.ndarray) -> np.ndarray:
        """M(t): how many shares one listing-day share has become."""
        return self._at(self.shares, sym, day, 1.0)

    def yield_through(self, sym: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Sum of the cash yields of the events on or before `day`."""
        return self._at(self.cum_yield, sym, day, 0.0)
