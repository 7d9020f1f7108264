-- A job's history (issue 13): created, paused, resumed, cancelled, retried, completed, each
-- with the name of the token that did it (NULL: the system) and when. Retry re-opens an
-- ended job, so its row alone no longer tells its story.
CREATE TABLE IF NOT EXISTS sync_job_events (
    id      bigserial PRIMARY KEY,
    task_id text NOT NULL REFERENCES sync_jobs (task_id) ON DELETE CASCADE,
    kind    text NOT NULL
            CHECK (kind IN ('created', 'paused', 'resumed', 'cancelled', 'retried', 'completed')),
    actor   text,
    at      timestamptz NOT NULL DEFAULT now(),
    detail  jsonb
);

CREATE INDEX IF NOT EXISTS sync_job_events_task ON sync_job_events (task_id, id);
-- A retry counts as a job start against its token's limits (chalicelib/limits.py).
CREATE INDEX IF NOT EXISTS sync_job_events_retried_by
    ON sync_job_events (actor, at DESC) WHERE kind = 'retried';

-- The jobs kept from before: their history as their rows tell it.
INSERT INTO sync_job_events (task_id, kind, actor, at)
SELECT task_id, 'created', created_by, created_at FROM sync_jobs ORDER BY created_at;
INSERT INTO sync_job_events (task_id, kind, actor, at)
SELECT task_id, status, CASE WHEN status = 'cancelled' THEN cancelled_by END, finished_at
FROM sync_jobs WHERE status IN ('completed', 'cancelled') AND finished_at IS NOT NULL
ORDER BY finished_at;

-- What a retried day's earlier attempts failed with, oldest first (its `error` is the
-- current run's).
ALTER TABLE sync_job_days ADD COLUMN IF NOT EXISTS past_errors text[] NOT NULL DEFAULT '{}';
