-- Completion notices as a transactional outbox. The transaction that ends a job (it
-- completes, or is cancelled) counts the ending and writes one row per configured
-- destination ('sns', 'webhook:<name>'); senders deliver them after commit. A retried job
-- (issue 13a) may end again: `ending` says which of its endings a notice is about, so
-- each ending gets exactly one row per destination.
ALTER TABLE sync_jobs ADD COLUMN IF NOT EXISTS endings integer NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS job_notices (
    notice_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),  -- receivers deduplicate on it
    task_id     text NOT NULL REFERENCES sync_jobs (task_id) ON DELETE CASCADE,
    ending      integer NOT NULL,
    destination text NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    payload     jsonb NOT NULL,  -- the job's summary as it ended
    attempts    integer NOT NULL DEFAULT 0,  -- claims: a sender that dies mid-send counts too
    due_at      timestamptz NOT NULL DEFAULT now(),
    -- A claim: no other sender takes the row until the lease ends (longer than one send).
    lease_until timestamptz,
    lease_token text,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    UNIQUE (task_id, ending, destination)
);

-- Senders look for pending rows that are due.
CREATE INDEX IF NOT EXISTS job_notices_due ON job_notices (due_at) WHERE status = 'pending';
