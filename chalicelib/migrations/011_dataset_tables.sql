-- More tushare datasets (issue 12), each a table of tushare's field names, following the
-- convention of migration 006: ts_code text COLLATE "C", trade_date date, then the values;
-- PRIMARY KEY (trade_date, ts_code) and no other index; a <table>_series function probing
-- the key once per synced date of the dataset; written by chalicelib.store.write_rows.

-- adj_factor: the cumulative adjustment factor (复权因子), a row for every listed stock,
-- suspended or not. hfq price = price * adj_factor (migration 012).
CREATE TABLE IF NOT EXISTS adj_factor (
    ts_code    text COLLATE "C" NOT NULL,
    trade_date date NOT NULL,
    adj_factor double precision,
    PRIMARY KEY (trade_date, ts_code)
);

-- daily_basic: a traded stock's daily indicators (shares in 万股, values in 万元, rates in %).
CREATE TABLE IF NOT EXISTS daily_basic (
    ts_code         text COLLATE "C" NOT NULL,
    trade_date      date NOT NULL,
    close           double precision,
    turnover_rate   double precision,
    turnover_rate_f double precision,
    volume_ratio    double precision,
    pe              double precision,
    pe_ttm          double precision,
    pb              double precision,
    ps              double precision,
    ps_ttm          double precision,
    dv_ratio        double precision,
    dv_ttm          double precision,
    total_share     double precision,
    float_share     double precision,
    free_share      double precision,
    total_mv        double precision,
    circ_mv         double precision,
    PRIMARY KEY (trade_date, ts_code)
);

-- suspend_d: suspensions (S) and resumptions (R) of a trade date. The one departure from
-- the convention: a stock may have both an S and an R row on one date (an intraday halt),
-- so the type is part of the key. A whole-day suspension has no suspend_timing.
CREATE TABLE IF NOT EXISTS suspend_d (
    ts_code        text COLLATE "C" NOT NULL,
    trade_date     date NOT NULL,
    suspend_timing text,
    suspend_type   text COLLATE "C" NOT NULL,
    PRIMARY KEY (trade_date, ts_code, suspend_type)
);

-- stock_basic: the listings, every status (L listed, D delisted, P listing paused), kept
-- current by the worker (chalicelib.completeness). Not a per-day table: keyed by code.
CREATE TABLE IF NOT EXISTS stock_basic (
    ts_code      text COLLATE "C" PRIMARY KEY,
    symbol       text,
    name         text,
    area         text,
    industry     text,
    market       text,
    exchange     text,
    list_status  text NOT NULL,
    list_date    date,
    delist_date  date,
    refreshed_at timestamptz NOT NULL DEFAULT now()
);

-- When each reference table was last fetched whole (stock_basic).
-- `claimed_until`: one worker fetches, the others wait for it rather than fetch it too.
CREATE TABLE IF NOT EXISTS source_refreshes (
    name          text PRIMARY KEY,
    refreshed_at  timestamptz NOT NULL,
    rows          integer NOT NULL,
    claimed_until timestamptz
);

CREATE OR REPLACE FUNCTION adj_factor_series(code text, from_date date DEFAULT '-infinity',
                                             to_date date DEFAULT 'infinity')
RETURNS SETOF adj_factor
LANGUAGE sql STABLE AS $$
    SELECT a.* FROM adj_factor a
    WHERE a.trade_date = ANY (ARRAY(SELECT s.trade_date FROM synced_dates s
                                    WHERE s.dataset = 'adj_factor'
                                      AND s.trade_date BETWEEN from_date AND to_date))
      AND a.ts_code = code
    ORDER BY a.trade_date
$$;

CREATE OR REPLACE FUNCTION daily_basic_series(code text, from_date date DEFAULT '-infinity',
                                              to_date date DEFAULT 'infinity')
RETURNS SETOF daily_basic
LANGUAGE sql STABLE AS $$
    SELECT b.* FROM daily_basic b
    WHERE b.trade_date = ANY (ARRAY(SELECT s.trade_date FROM synced_dates s
                                    WHERE s.dataset = 'daily_basic'
                                      AND s.trade_date BETWEEN from_date AND to_date))
      AND b.ts_code = code
    ORDER BY b.trade_date
$$;

CREATE OR REPLACE FUNCTION suspend_d_series(code text, from_date date DEFAULT '-infinity',
                                            to_date date DEFAULT 'infinity')
RETURNS SETOF suspend_d
LANGUAGE sql STABLE AS $$
    SELECT s.* FROM suspend_d s
    WHERE s.trade_date = ANY (ARRAY(SELECT d.trade_date FROM synced_dates d
                                    WHERE d.dataset = 'suspend_d'
                                      AND d.trade_date BETWEEN from_date AND to_date))
      AND s.ts_code = code
    ORDER BY s.trade_date, s.suspend_type
$$;
