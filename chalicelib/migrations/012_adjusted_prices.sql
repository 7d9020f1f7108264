-- Adjusted prices (issue 12), tushare's pro_bar convention, from daily_bars and adj_factor:
--   hfq (后复权, backward-adjusted): price * adj_factor(t). A price series in the listing
--       day's money: it never changes once written, and new factors never rewrite it.
--   qfq (前复权, forward-adjusted):  price * adj_factor(t) / adj_factor(ref), where ref is
--       the latest trade date on or before `as_of` whose factor is stored; `as_of` defaults
--       to the range's end, so with no end given ref is the newest factor stored (what
--       pro_bar does: the last date it fetched). Prices of the reference date are as traded.
-- open, high, low, close and pre_close are adjusted; change is recomputed from the adjusted
-- close and pre_close; pct_chg, vol and amount are unchanged (a ratio, and what traded).
-- Values are not rounded (pro_bar rounds to 2 decimals: round(x::numeric, 2) for that).
-- A bar whose factor is not stored gets NULL prices (and adj_factor NULL): never a wrong one.

CREATE OR REPLACE FUNCTION daily_bars_hfq(code text, from_date date DEFAULT '-infinity',
                                          to_date date DEFAULT 'infinity')
RETURNS TABLE (ts_code text, trade_date date, open double precision, high double precision,
               low double precision, close double precision, pre_close double precision,
               change double precision, pct_chg double precision, vol double precision,
               amount double precision, adj_factor double precision)
LANGUAGE sql STABLE AS $$
    SELECT b.ts_code, b.trade_date, b.open * f.adj_factor, b.high * f.adj_factor,
           b.low * f.adj_factor, b.close * f.adj_factor, b.pre_close * f.adj_factor,
           (b.close - b.pre_close) * f.adj_factor, b.pct_chg, b.vol, b.amount, f.adj_factor
    FROM daily_bars_series(code, from_date, to_date) b
    LEFT JOIN adj_factor f ON f.trade_date = b.trade_date AND f.ts_code = code
    ORDER BY b.trade_date
$$;

-- The factor qfq divides by: the stock's newest stored factor on or before `ref_date`
-- (synced dates walked newest first, one key probe each, until one has the stock).
CREATE OR REPLACE FUNCTION adj_factor_as_of(code text, ref_date date DEFAULT 'infinity')
RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT a.adj_factor
    FROM synced_dates s
    JOIN adj_factor a ON a.trade_date = s.trade_date AND a.ts_code = code
    WHERE s.dataset = 'adj_factor' AND s.trade_date <= ref_date
    ORDER BY s.trade_date DESC
    LIMIT 1
$$;

CREATE OR REPLACE FUNCTION daily_bars_qfq(code text, from_date date DEFAULT '-infinity',
                                          to_date date DEFAULT 'infinity', as_of date DEFAULT NULL)
RETURNS TABLE (ts_code text, trade_date date, open double precision, high double precision,
               low double precision, close double precision, pre_close double precision,
               change double precision, pct_chg double precision, vol double precision,
               amount double precision, adj_factor double precision, ref_factor double precision)
LANGUAGE sql STABLE AS $$
    SELECT h.ts_code, h.trade_date, h.open / r.f, h.high / r.f, h.low / r.f, h.close / r.f,
           h.pre_close / r.f, h.change / r.f, h.pct_chg, h.vol, h.amount, h.adj_factor, r.f
    FROM daily_bars_hfq(code, from_date, to_date) h
    CROSS JOIN (SELECT adj_factor_as_of(code, coalesce(as_of, to_date)) AS f) r
    ORDER BY h.trade_date
$$;
