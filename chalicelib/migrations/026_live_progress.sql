-- Pushed progress over the WebSocket API. A browser cannot send an Authorization header on
-- a WebSocket, and a token in its URL would reach access logs: it trades its token for a
-- ticket (an authenticated HTTP call), kept here as a SHA-256 only, short-lived, and taken
-- (deleted) by the one connection that presents it.
CREATE TABLE IF NOT EXISTS live_tickets (
    ticket_sha256 text PRIMARY KEY,
    token_name    text,  -- whose token bought it (NULL: an anonymous reader, PUBLIC_READ)
    role          text,
    expires_at    timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS live_tickets_expires_at ON live_tickets (expires_at);

-- Open WebSocket connections and the job each one follows (one at a time, as the page).
CREATE TABLE IF NOT EXISTS live_connections (
    connection_id text PRIMARY KEY,
    token_name    text,
    task_id       text REFERENCES sync_jobs (task_id) ON DELETE SET NULL,
    connected_at  timestamptz NOT NULL DEFAULT now(),
    subscribed_at timestamptz
);

-- A settled day looks up its job's subscribers.
CREATE INDEX IF NOT EXISTS live_connections_task ON live_connections (task_id) WHERE task_id IS NOT NULL;
