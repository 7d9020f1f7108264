-- Who started and who cancelled each job: a token's NAME (never the token), for the
-- history and for the per-token write limits (job starts per hour, forced re-syncs per day).
ALTER TABLE sync_jobs ADD COLUMN IF NOT EXISTS created_by text;
ALTER TABLE sync_jobs ADD COLUMN IF NOT EXISTS cancelled_by text;

CREATE INDEX IF NOT EXISTS sync_jobs_created_by
    ON sync_jobs (created_by, created_at DESC) WHERE created_by IS NOT NULL;
