-- How often a day's message was sent; the sweeper stops re-sending after a bound.
ALTER TABLE sync_job_days ADD COLUMN IF NOT EXISTS enqueue_count integer NOT NULL DEFAULT 0;
