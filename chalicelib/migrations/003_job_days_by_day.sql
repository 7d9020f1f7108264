-- The sync page's calendar looks up job days by date across all jobs.
CREATE INDEX IF NOT EXISTS sync_job_days_day ON sync_job_days (day);
