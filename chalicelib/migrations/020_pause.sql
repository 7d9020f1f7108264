-- Pause and resume (issue 13). A paused job starts no new day but still holds the one-job
-- slot: the partial unique index that makes a second active job impossible now covers both
-- active statuses.
ALTER TABLE sync_jobs DROP CONSTRAINT IF EXISTS sync_jobs_status_check;
ALTER TABLE sync_jobs ADD CONSTRAINT sync_jobs_status_check
    CHECK (status IN ('running', 'paused', 'completed', 'cancelled'));

DROP INDEX IF EXISTS sync_jobs_one_active;
CREATE UNIQUE INDEX sync_jobs_one_active
    ON sync_jobs ((true)) WHERE status IN ('running', 'paused');

-- Time spent paused, so that a job's rate (and so its time left) counts only the time it
-- was allowed to work. `paused_at` is when the current pause began (NULL unless paused);
-- `paused_s` is every finished pause of the job's life. A retry starts a new run
-- (`run_started_at`, NULL: the job's creation) whose paused seconds are `run_paused_s`.
ALTER TABLE sync_jobs ADD COLUMN IF NOT EXISTS paused_at timestamptz;
ALTER TABLE sync_jobs ADD COLUMN IF NOT EXISTS paused_s double precision NOT NULL DEFAULT 0;
ALTER TABLE sync_jobs ADD COLUMN IF NOT EXISTS run_started_at timestamptz;
ALTER TABLE sync_jobs ADD COLUMN IF NOT EXISTS run_paused_s double precision NOT NULL DEFAULT 0;
-- How many times the job was re-opened by a retry: which of its endings is which.
ALTER TABLE sync_jobs ADD COLUMN IF NOT EXISTS retries integer NOT NULL DEFAULT 0;
