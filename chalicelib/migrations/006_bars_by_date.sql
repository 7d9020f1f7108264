-- Twenty years of history: bars keyed by date, job-history reads that do not grow with it.
-- Measurements: bench/README.md, sections "Schema at size" and "Migration 006".
--
-- THE CONVENTION FOR EVERY DATASET TABLE (daily_bars now; adj_factor, daily_basic, ... later):
--   ts_code text COLLATE "C" NOT NULL, trade_date date NOT NULL, then the values;
--   PRIMARY KEY (trade_date, ts_code), and no other index;
--   a function <table>_series(code, from_date, to_date) for one stock's rows, probing the
--   key once per date of the dataset's synced dates (as daily_bars_series below);
--   written by chalicelib.store.write_rows with a Dataset(table, fields) and the queries
--   named <table>_<step> in queries.sql (copy daily_bars_*).
-- A day is written as one unit. With the date leading the key its ~5,300 rows land side
-- by side, at the index's right edge for a new day (in one narrow range for an older one):
-- ~20 index pages a day whatever the table holds, 2.2x a keyless COPY at 0 and at 13 M
-- rows. Led by ts_code, the same day scatters over every stock's range, thousands of
-- pages, each written whole to the WAL after a checkpoint: 11x at 13 M rows. An extra
-- index on (ts_code, trade_date) for series reads scatters the same way (8.6x).
-- COLLATE "C": codes are ASCII, compared bytewise rather than through the locale.
--
-- WHAT IT LOCKS, FOR HOW LONG (13 M bars, 900,000 job-day rows, 2 vCPUs; bench/migration.py):
--   1. sync_job_days, EXCLUSIVE: job-day writers and lockers wait (workers, job creation,
--      the sweeper), plain reads go on. Taken first, in the workers' own order (a day's row,
--      then its bars): no worker can hold a day row while waiting for daily_bars, which
--      would deadlock with this migration waiting for that row's table.
--   2. daily_bars, SHARE while the new key is built (~3.6 s): reads go on, writes wait.
--   3. daily_bars, ACCESS EXCLUSIVE from the swap to the commit; sync_job_days, ACCESS
--      EXCLUSIVE while job_created_at is filled in (~4.4 s at 900,000 rows; ~0.5 s at
--      100,000): every read of either table waits, the API's included.
--   Measured: 8.3 s in all; the longest wait of a bars reader 4.4 s, of a writer 8.0 s.
-- No row is moved, copied or deleted, so none can be lost or doubled; the new unique key is
-- checked as it is built, and the old key stays until the new one is whole.
--
-- A LARGE DATABASE: every container applies pending migrations on its first use of the
-- database (an API container has 30 s), holding its locks until commit. With millions of
-- bars or a long job history, prepare online BEFORE deploying this version (psql or any
-- client; reads and writes go on; ~4.6 s and ~6 s at the sizes above):
--     CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS daily_bars_date_code
--         ON daily_bars (trade_date, ts_code COLLATE "C");
--     ALTER TABLE sync_job_days ADD COLUMN IF NOT EXISTS job_created_at timestamptz;
--     UPDATE sync_job_days d SET job_created_at = j.created_at FROM sync_jobs j
--         WHERE j.task_id = d.task_id AND d.job_created_at IS NULL;
--     CREATE INDEX CONCURRENTLY IF NOT EXISTS sync_job_days_day_newest
--         ON sync_job_days (day, job_created_at DESC, task_id DESC);
-- then deploy: this migration finds them and only swaps and catches up (0.36 s above,
-- 0.17 s of it with both tables locked).
-- An index left INVALID by an interrupted CONCURRENTLY build is dropped and built here.

LOCK TABLE sync_job_days IN EXCLUSIVE MODE;

DO $$
BEGIN
    IF (SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass('daily_bars_date_code')) THEN
        DROP INDEX daily_bars_date_code;
    END IF;
    IF (SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass('sync_job_days_day_newest')) THEN
        DROP INDEX sync_job_days_day_newest;
    END IF;
END $$;

-- Bars: the new key, built beside the old one, then swapped in.
CREATE UNIQUE INDEX IF NOT EXISTS daily_bars_date_code ON daily_bars (trade_date, ts_code COLLATE "C");
ALTER TABLE daily_bars DROP CONSTRAINT daily_bars_pkey;
DROP INDEX IF EXISTS daily_bars_trade_date;
-- No rewrite (text to text), and the one index left already collates ts_code with "C": kept.
ALTER TABLE daily_bars ALTER COLUMN ts_code TYPE text COLLATE "C";
ALTER TABLE daily_bars ADD CONSTRAINT daily_bars_pkey PRIMARY KEY USING INDEX daily_bars_date_code;

-- One stock's bars, oldest first: a key probe per synced date (PostgreSQL 16 cannot skip
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

-- The calendar's newest job for each date (date_states) meant sorting every job that ever
-- included the date: ~270 a date with 10,000 jobs in the history. Each day row now carries
-- its job's created_at (copied on insert; a job's created_at never changes), so an index
-- answers with one probe a date.
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
