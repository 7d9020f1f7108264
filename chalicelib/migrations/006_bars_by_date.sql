-- Twenty years of history: bars keyed by date, job-history reads that do not grow with it.
-- bench/README.md ("Schema at size", "Migration 006") has the measurements behind each step.
--
-- THE CONVENTION FOR EVERY DATASET TABLE (daily_bars now; adj_factor, daily_basic, ... later):
--   ts_code text COLLATE "C" NOT NULL, trade_date date NOT NULL, then the values;
--   PRIMARY KEY (trade_date, ts_code) and no other index;
--   one stock's series through <table>_series(code, from, to), probing the key once per
--   stored date (the dataset's list of synced dates), in place of an index on ts_code.
-- A day is written as one unit, and with the date leading the key its ~5,300 rows land
-- side by side at the index's right edge (or in one narrow range, for an older day):
-- about 20 index pages a day, whatever the table holds. Led by ts_code the same day
-- scatters over every stock's range, thousands of pages, each written in full to the WAL
-- after a checkpoint: 11x the cost of a keyless COPY at 13 M rows instead of 2.2x.
-- COLLATE "C": codes are ASCII and compared bytewise, not through the locale (strcoll).
--
-- WHAT THIS MIGRATION LOCKS, AND FOR HOW LONG (2 CPUs, PostgreSQL 16; bench/migration.py):
--   rows in daily_bars   building the new key (SHARE lock: reads go on, writes wait)   the swap
--   13 M                 see bench/README.md "Migration 006"                          ~ms
-- The new key is built while the old one still serves; then, in one step, the old key and
-- the trade_date index are dropped and the new index becomes the primary key (ACCESS
-- EXCLUSIVE for milliseconds, until commit). No row is moved, copied or rewritten:
-- nothing can be lost or doubled, and the unique key is checked while it is built.
--
-- A LARGE DATABASE: every container applies pending migrations on its first use of the
-- database, and an API container has 30 s. Above a few million bars, build the key online
-- BEFORE deploying this version (psql, any client; reads and writes go on meanwhile):
--     CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS daily_bars_date_code
--         ON daily_bars (trade_date, ts_code COLLATE "C");
-- then deploy: this migration finds the index ready and only swaps (milliseconds).
-- An index left INVALID by an interrupted CONCURRENTLY build is dropped and built here.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index
               WHERE indexrelid = to_regclass('daily_bars_date_code') AND NOT indisvalid) THEN
        DROP INDEX daily_bars_date_code;
    END IF;
END $$;

CREATE UNIQUE INDEX IF NOT EXISTS daily_bars_date_code ON daily_bars (trade_date, ts_code COLLATE "C");

ALTER TABLE daily_bars DROP CONSTRAINT daily_bars_pkey;
DROP INDEX IF EXISTS daily_bars_trade_date;
-- No rewrite (text to text), and the one index on ts_code already collates with "C": kept as is.
ALTER TABLE daily_bars ALTER COLUMN ts_code TYPE text COLLATE "C";
ALTER TABLE daily_bars ADD CONSTRAINT daily_bars_pkey PRIMARY KEY USING INDEX daily_bars_date_code;

-- One stock's bars, oldest first: an index probe per synced date (PostgreSQL 16 cannot skip
-- through the key's leading date by itself). Inlined into the caller's query.
CREATE OR REPLACE FUNCTION daily_bars_series(code text, from_date date DEFAULT '-infinity',
                                             to_date date DEFAULT 'infinity')
RETURNS SETOF daily_bars
LANGUAGE sql STABLE AS $$
    SELECT b.* FROM daily_bars b
    WHERE b.trade_date = ANY (ARRAY(SELECT s.trade_date FROM synced_dates s
                                    WHERE s.trade_date BETWEEN from_date AND to_date))
      AND b.ts_code = code
    ORDER BY b.trade_date
$$;

-- The calendar's "newest job for each date" (date_states) looked at every job that ever
-- included the date and sorted them: ~270 a date with 10,000 jobs in the history. Each day
-- row now carries its job's created_at (set on insert: a job's created_at never changes),
-- so an index answers the newest per date with one probe.
ALTER TABLE sync_job_days ADD COLUMN IF NOT EXISTS job_created_at timestamptz;

CREATE OR REPLACE FUNCTION sync_job_days_job_created_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT j.created_at INTO NEW.job_created_at FROM sync_jobs j WHERE j.task_id = NEW.task_id;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS sync_job_days_job_created_at ON sync_job_days;
CREATE TRIGGER sync_job_days_job_created_at BEFORE INSERT ON sync_job_days
    FOR EACH ROW EXECUTE FUNCTION sync_job_days_job_created_at();

-- Replaced by the index below, which leads with the same column.
DROP INDEX IF EXISTS sync_job_days_day;
UPDATE sync_job_days d SET job_created_at = j.created_at
FROM sync_jobs j WHERE j.task_id = d.task_id AND d.job_created_at IS NULL;
ALTER TABLE sync_job_days ALTER COLUMN job_created_at SET NOT NULL;
CREATE INDEX IF NOT EXISTS sync_job_days_day_newest
    ON sync_job_days (day, job_created_at DESC, task_id DESC);
