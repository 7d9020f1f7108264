-- Datasets per job (issue 12): a job names the tushare datasets it syncs, and each
-- (job, day, dataset) has a status of its own; the day's status is their aggregate.
-- Every statement here is a catalog change or touches small tables only (no rewrite of
-- any bars table): ADD COLUMN with a constant default is instant; synced_dates holds a
-- row per synced trade date and dataset (some thousands); only the open days of jobs
-- still active get dataset rows backfilled.

ALTER TABLE sync_jobs ADD COLUMN IF NOT EXISTS datasets text[] NOT NULL DEFAULT '{daily}';
-- 'sync': a range started by a caller; 'fill': the faulty (day, dataset) pairs of an audit.
ALTER TABLE sync_jobs ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'sync';

CREATE TABLE IF NOT EXISTS sync_job_day_datasets (
    task_id       text NOT NULL,
    day           date NOT NULL,
    dataset       text NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'success', 'failed', 'skipped')),
    skip_reason   text,
    attempts      integer NOT NULL DEFAULT 0,
    rows_written  integer NOT NULL DEFAULT 0,
    expected_rows integer,  -- what the listings and suspensions say the day should have
    error         text,
    force         boolean NOT NULL DEFAULT false,  -- fetched even if synced (a fill's pairs)
    finished_at   timestamptz,
    PRIMARY KEY (task_id, day, dataset),
    FOREIGN KEY (task_id, day) REFERENCES sync_job_days (task_id, day) ON DELETE CASCADE
);

-- Open days of active jobs, deployed mid-job: their one dataset was daily.
INSERT INTO sync_job_day_datasets (task_id, day, dataset)
SELECT d.task_id, d.day, 'daily'
FROM sync_job_days d JOIN sync_jobs j ON j.task_id = d.task_id
WHERE d.status IN ('pending', 'running') AND j.status IN ('running', 'paused')
ON CONFLICT DO NOTHING;

-- "Already synced" per dataset: every existing row was daily's. Keyed by dataset first, so
-- a series function reads one dataset's dates as one index range.
ALTER TABLE synced_dates ADD COLUMN IF NOT EXISTS dataset text NOT NULL DEFAULT 'daily';
ALTER TABLE synced_dates ADD COLUMN IF NOT EXISTS expected_rows integer;
ALTER TABLE synced_dates DROP CONSTRAINT IF EXISTS synced_dates_pkey;
ALTER TABLE synced_dates ADD CONSTRAINT synced_dates_pkey PRIMARY KEY (dataset, trade_date);

-- The bars' series function now reads daily's own synced dates.
CREATE OR REPLACE FUNCTION daily_bars_series(code text, from_date date DEFAULT '-infinity',
                                             to_date date DEFAULT 'infinity')
RETURNS SETOF daily_bars
LANGUAGE sql STABLE AS $$
    SELECT b.* FROM daily_bars b
    WHERE b.trade_date = ANY (ARRAY(SELECT s.trade_date FROM synced_dates s
                                    WHERE s.dataset = 'daily'
                                      AND s.trade_date BETWEEN from_date AND to_date))
      AND b.ts_code = code
    ORDER BY b.trade_date
$$;

-- A day settled by any path but its datasets' own (a cancel, a sweep, an invalid token, a
-- dead letter) takes its open datasets with it; a failed day re-opened by a retry re-opens
-- its failed datasets (the ones that succeeded stay done and are not fetched again).
CREATE OR REPLACE FUNCTION sync_job_days_datasets_follow() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('failed', 'skipped') THEN
        UPDATE sync_job_day_datasets
        SET status = NEW.status, skip_reason = NEW.skip_reason,
            error = coalesce(error, NEW.error), finished_at = now()
        WHERE task_id = NEW.task_id AND day = NEW.day AND status = 'pending';
    ELSIF NEW.status = 'pending' AND OLD.status = 'failed' THEN
        UPDATE sync_job_day_datasets
        SET status = 'pending', error = NULL, attempts = 0, finished_at = NULL
        WHERE task_id = NEW.task_id AND day = NEW.day AND status = 'failed';
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS sync_job_days_datasets_follow ON sync_job_days;
CREATE TRIGGER sync_job_days_datasets_follow AFTER UPDATE OF status ON sync_job_days
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       AND (NEW.status IN ('failed', 'skipped')
                            OR (NEW.status = 'pending' AND OLD.status = 'failed')))
    EXECUTE FUNCTION sync_job_days_datasets_follow();
