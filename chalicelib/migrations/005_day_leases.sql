-- A claimed day's lease: until when its worker may still be working on it (the worker
-- function's timeout plus a margin, from the claim), and which claim holds it. A delivery
-- that finds a live lease leaves the day alone; a database-outage hand-off carries the
-- token so that its own continuation may take the day back before the lease runs out.
ALTER TABLE sync_job_days ADD COLUMN IF NOT EXISTS lease_until timestamptz;
ALTER TABLE sync_job_days ADD COLUMN IF NOT EXISTS lease_token text;

-- The sweeper prunes ended jobs by age.
CREATE INDEX IF NOT EXISTS sync_jobs_finished_at ON sync_jobs (finished_at) WHERE status <> 'running';
