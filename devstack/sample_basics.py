"""tushare's `daily_basic` for the sample market: share counts, market values,
turnover and valuation ratios, derived from a day's bars.

Units as tushare: shares in 万股 (10,000 shares), market values in 万元, rates in %.
For a bar with close c and volume v (手, 100 shares) of symbol s on day t:

    total_share = round(S_s * M(t) / M(REF), 4)       S_s: total shares on REF's basis
    float_share = round(S_s * f_s * M(t) / M(REF), 4)  f_s: the floating fraction
    free_share  = round(float_share * g_s, 4)          g_s: the free-floating fraction
    total_mv    = round(c * total_share, 4)
    circ_mv     = round(c * float_share, 4)
    turnover_rate   = round(v / float_share, 4)   (v*100 shares / (float_share*1e4) * 100%)
    turnover_rate_f = round(v / free_share, 4)
    volume_ratio    = round(v / typical volume, 2)  (a proxy for 量比: the symbol's usual day)
    pe     = round(total_mv / profit of t's year, 4), None in a loss-making year
    pe_ttm = the same with the profit of t's quarter (trailing twelve months)
    pb, ps, ps_ttm = total_mv / book value, revenue (year), revenue (quarter)
    dv_ttm   = 100 * cash yields of ex-dates in the last 365 days (None if none)
    dv_ratio = 100 * cash yields of ex-dates in the previous calendar year (None if none)

Shares change only on ex-dates with bonus shares (M(t), see sample_actions), so
they are constant between ex-dates and jump on splits.
"""
from __future__ import annotations

import numpy as np

from devstack.sample_actions import CorporateActions
from devstack.sample_calendar import Calendar, Table
from devstack.sample_noise import normal, uniform
from devstack.sample_universe import Universe

DAILY_BASIC_FIELDS = ("ts_code", "trade_date", "close", "turnover_rate", "turnover_rate_f",
                      "volume_ratio", "pe", "pe_ttm", "pb", "ps", "ps_ttm", "dv_ratio", "dv_ttm",
                      "total_share", "float_share", "free_share", "total_mv", "circ_mv")
_MEAN_VOLUME_NOISE = np.exp(0.4 ** 2 / 2)  # E[exp(0.4 N)]: the volume noise of SampleMarket.bars


class Fundamentals:
    def __init__(self, calendar: Calendar, universe: Universe, actions: CorporateActions) -> None:
        self.calendar, self.universe, self.actions = calendar, universe, actions
        key = universe.key
        turnover = np.clip(np.exp(np.log(1.5) + 0.6 * normal(key, 0, 20)), 0.2, 15.0)  # % a day
        self.float_frac = 0.35 + 0.65 * uniform(key, 0, 21)
        self.free_frac = 0.45 + 0.5 * uniform(key, 0, 22)
        # A usual day turns over `turnover` % of the float, so the float follows the volume.
        self.total_ref = universe.vol_base / turnover / self.float_frac  # 万股 on REF's basis
        self.mv_ref = universe.base * self.total_ref                      # 万元, a usual day
        self.pe0 = np.exp(np.log(25.0) + 0.6 * normal(key, 0, 23))
        self.pb0 = np.exp(np.log(2.2) + 0.5 * normal(key, 0, 24))
        self.ps0 = np.exp(np.log(2.5) + 0.8 * normal(key, 0, 25))
        self.loss_p = 0.3 * uniform(key, 0, 26) ** 2  # most rarely lose money, a few often do
        years = calendar.sessions.astype("datetime64[Y]")
        self.year = years.astype(np.int64) + 1970
        self.quarter = self.year * 4 + (calendar.sessions.astype("datetime64[M]").astype(np.int64)
                                        % 12) // 3
        # The index of the last session of each year (-1 before the first session),
        # and of the last session at least 365 days before each session.
        self._first_year = int(self.year[0]) - 2
        next_jan1 = (np.arange(self._first_year, int(self.year[-1]) + 1) + 1 - 1970).astype(
            "datetime64[Y]").astype("datetime64[D]")
        self._year_end = np.searchsorted(calendar.sessions, next_jan1, side="left") - 1
        self._year_ago = np.searchsorted(calendar.sessions, calendar.sessions
                                         - np.timedelta64(365, "D"), side="right") - 1

    def table(self, bars: Table) -> Table:
        """daily_basic rows for bars carrying `_sym` and `_day` (SampleMarket.bars)."""
        sym, day, close, vol = bars["_sym"], bars["_day"], bars["close"], bars["vol"]
        key, actions = self.universe.key[sym], self.actions
        mult = actions.shares_at(sym, day) / actions.ref_shares[sym]
        total_share = np.round(self.total_ref[sym] * mult, 4)
        float_exact = self.total_ref[sym] * self.float_frac[sym] * mult
        float_share = np.round(float_exact, 4)
        free_share = np.round(float_exact * self.free_frac[sym], 4)
        total_mv = np.round(close * total_share, 4)
        typical_vol = self.universe.vol_base[sym] * mult * _MEAN_VOLUME_NOISE

        year, quarter, mv_ref = self.year[day], self.quarter[day], self.mv_ref[sym]

        def ratio(base: np.ndarray, coord: np.ndarray, stream: int, spread: float,
                  loss_stream: int | None = None) -> np.ndarray:
            value = np.round(total_mv / (mv_ref / base * np.exp(spread * normal(key, coord, stream))), 4)
            if loss_stream is not None:
                value[uniform(key, coord, loss_stream) < self.loss_p[sym]] = np.nan
            return value

        def dividend_pct(now: np.ndarray, then: np.ndarray) -> np.ndarray:
            paid = actions.yield_through(sym, now) - actions.yield_through(sym, then)
            return np.where(paid > 0, np.round(100 * paid, 4), np.nan)

        return {
            "ts_code": bars["ts_code"], "trade_date": bars["trade_date"], "close": close,
            "turnover_rate": np.round(vol / float_share, 4),
            "turnover_rate_f": np.round(vol / free_share, 4),
            "volume_ratio": np.round(vol / typical_vol, 2),
            "pe": ratio(self.pe0[sym], year, 27, 0.3, loss_stream=28),
            "pe_ttm": ratio(self.pe0[sym], quarter, 29, 0.3, loss_stream=30),
            "pb": ratio(self.pb0[sym], year, 31, 0.1),
            "ps": ratio(self.ps0[sym], year, 32, 0.15),
            "ps_ttm": ratio(self.ps0[sym], quarter, 33, 0.15),
            "dv_ratio": dividend_pct(self._year_end[year - 1 - self._first_year],
                                     self._year_end[year - 2 - self._first_year]),
            "dv_ttm": dividend_pct(day, self._year_ago[day]),
            "total_share": total_share, "float_share": float_share, "free_share": free_share,
            "total_mv": total_mv, "circ_mv": np.round(close * float_share, 4),
        }
