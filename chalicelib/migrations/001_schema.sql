-- Durable batch-sync jobs, their days, the synced market data and the cached calendar.

CREATE TABLE IF NOT EXISTS sync_jobs (
    task_id     text PRIMARY KEY,
    start_date  date NOT NULL,
    end_date    date NOT NULL,
    force       boolean NOT NULL DEFAULT false,
    status      text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'completed', 'cancelled')),
    message     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CHECK (start_date <= end_date)
);

-- The advisory lock serialises job creation; this index makes a second active
-- job impossible even for a code path that forgets to take the lock.
CREATE UNIQUE INDEX IF NOT EXISTS sync_jobs_one_active
    ON sync_jobs ((true)) WHERE status = 'running';

CREATE INDEX IF NOT EXISTS sync_jobs_created_at ON sync_jobs (created_at DESC);

CREATE TABLE IF NOT EXISTS sync_job_days (
    task_id      text NOT NULL REFERENCES sync_jobs (task_id) ON DELETE CASCADE,
    day          date NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'success', 'failed', 'skipped')),
    skip_reason  text,
    attempts     integer NOT NULL DEFAULT 0,
    rows_written integer NOT NULL DEFAULT 0,
    error        text,
    enqueued_at  timestamptz,
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (task_id, day)
);

-- Progress and the sweeper look for unfinished days of a job.
CREATE INDEX IF NOT EXISTS sync_job_days_open
    ON sync_job_days (task_id, day) WHERE status IN ('pending', 'running');

CREATE TABLE IF NOT EXISTS daily_bars (
    ts_code    text NOT NULL,
    trade_date date NOT NULL,
    open       double precision,
    high       double precision,
    low        double precision,
    close      double precision,
    pre_close  double precision,
    change     double precision,
    pct_chg    double precision,
    vol        double precision,
    amount     double precision,
    PRIMARY KEY (ts_code, trade_date)
);

CREATE INDEX IF NOT EXISTS daily_bars_trade_date ON daily_bars (trade_date);

-- One row per trade date whose bars are fully written.
CREATE TABLE IF NOT EXISTS synced_dates (
    trade_date date PRIMARY KEY,
    rows       integer NOT NULL,
    task_id    text,
    synced_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS trade_calendar (
    exchange  text NOT NULL,
    cal_date  date NOT NULL,
    is_open   boolean NOT NULL,
    cached_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, cal_date)
);
