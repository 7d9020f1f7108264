-- One tushare quota for every worker (issue 12): a sliding window per token and interface,
-- as tushare counts it. A (token, api) has one row per call the window allows; a call may
-- go when the oldest row's `used_at` has left the window, and takes that row by setting it
-- to now, in one UPDATE ... RETURNING (chalicelib.quota). The token itself is never
-- stored: `token_fp` is the first 16 hex digits of its SHA-256.
CREATE TABLE IF NOT EXISTS tushare_quota (
    token_fp text NOT NULL,
    api      text NOT NULL,
    slot     integer NOT NULL,
    used_at  timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (token_fp, api, slot)
);
