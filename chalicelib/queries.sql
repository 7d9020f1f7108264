-- Every statement stocksync runs, by name. Loaded by chalicelib.db.query(name).
-- Format: a `-- name --` line, a one-line description, then the statement.

-- lock_job_creation --
-- Serialise job creation across API instances for the rest of the transaction.
SELECT pg_advisory_xact_lock(%(lock_key)s)

-- active_job --
-- The job that blocks new ones, if any: running or paused (a paused job keeps the slot).
SELECT task_id, status FROM sync_jobs WHERE status IN ('running', 'paused') LIMIT 1

-- insert_job --
-- A new running job; nothing when the task id is taken (the caller picks another).
INSERT INTO sync_jobs (task_id, start_date, end_date, force, message, created_by, datasets, kind)
VALUES (%(task_id)s, %(start_date)s, %(end_date)s, %(force)s, %(message)s, %(created_by)s,
        %(datasets)s::text[], %(kind)s)
ON CONFLICT (task_id) DO NOTHING
RETURNING task_id

-- insert_job_days --
-- One pending row per calendar day of the job's range.
INSERT INTO sync_job_days (task_id, day)
SELECT %(task_id)s, d::date
FROM generate_series(%(start_date)s::date, %(end_date)s::date, interval '1 day') AS d

-- mark_days_enqueued --
-- Record that these days' messages reached the queue.
UPDATE sync_job_days SET enqueued_at = now(), enqueue_count = enqueue_count + 1
WHERE task_id = %(task_id)s AND day = ANY(%(days)s)

-- get_job --
-- One job's own row.
SELECT task_id, start_date, end_date, force, status, message, created_at, finished_at,
       datasets, kind
FROM sync_jobs WHERE task_id = %(task_id)s

-- insert_job_event --
-- One line of a job's history: what happened, who did it (a token's name; NULL: the system).
INSERT INTO sync_job_events (task_id, kind, actor, detail)
VALUES (%(task_id)s, %(kind)s, %(actor)s, %(detail)s::jsonb)

-- job_events --
-- A job's history, oldest first.
SELECT kind, actor, at, detail FROM sync_job_events WHERE task_id = %(task_id)s ORDER BY id

-- job_progress --
-- A job with its days aggregated: the numbers the progress endpoint shows.
SELECT j.task_id, j.status, j.start_date, j.end_date, j.force, j.message,
       j.created_at, j.finished_at, now() AS observed_at,
       j.paused_at, j.paused_s, j.run_paused_s, j.retries, j.updated_at, j.datasets, j.kind,
       coalesce(j.run_started_at, j.created_at) AS run_started_at,
       count(d.day) AS total,
       count(d.day) FILTER (WHERE d.status = 'success') AS success,
       count(d.day) FILTER (WHERE d.status = 'failed') AS failed,
       count(d.day) FILTER (WHERE d.status = 'skipped') AS skipped,
       count(d.day) FILTER (WHERE d.status = 'running') AS running,
       coalesce(sum(d.rows_written), 0) AS rows,
       min(d.day) FILTER (WHERE d.status = 'running') AS running_day,
       min(d.day) FILTER (WHERE d.status = 'pending') AS next_day,
       max(d.day) FILTER (WHERE d.status IN ('success', 'failed', 'skipped')) AS last_done_day,
       count(d.day) FILTER (WHERE d.status IN ('success', 'failed', 'skipped')
                            AND d.finished_at >= coalesce(j.run_started_at, j.created_at)) AS run_settled,
       (SELECT coalesce(jsonb_object_agg(r.reason, r.n), '{}'::jsonb)
        FROM (SELECT coalesce(s.skip_reason, 'unknown') AS reason, count(*) AS n
              FROM sync_job_days s WHERE s.task_id = j.task_id AND s.status = 'skipped'
              GROUP BY 1) r) AS skipped_by_reason,
       (SELECT coalesce(jsonb_object_agg(x.dataset, jsonb_build_object(
                   'success', x.success, 'failed', x.failed, 'skipped', x.skipped,
                   'pending', x.pending, 'rows', x.rows)), '{}'::jsonb)
        FROM (SELECT dataset, count(*) FILTER (WHERE status = 'success') AS success,
                     count(*) FILTER (WHERE status = 'failed') AS failed,
                     count(*) FILTER (WHERE status = 'skipped') AS skipped,
                     count(*) FILTER (WHERE status = 'pending') AS pending,
                     coalesce(sum(rows_written), 0) AS rows
              FROM sync_job_day_datasets x WHERE x.task_id = j.task_id GROUP BY dataset) x
       ) AS dataset_counts
FROM sync_jobs j
LEFT JOIN sync_job_days d ON d.task_id = j.task_id
WHERE j.task_id = %(task_id)s
GROUP BY j.task_id

-- job_days --
-- Every day of a job, in date order.
SELECT day, status, skip_reason, attempts, rows_written, error, started_at, finished_at,
       past_errors
FROM sync_job_days WHERE task_id = %(task_id)s ORDER BY day

-- lock_day_for_claim --
-- A day and its job's state, the day locked while a delivery decides: claim, wait for a live lease, or leave it.
SELECT d.status, d.lease_token, coalesce(d.lease_until > now(), false) AS lease_live,
       greatest(ceil(extract(epoch FROM d.lease_until - now())), 0)::integer AS lease_left_s,
       j.status AS job_status, j.force
FROM sync_job_days d
JOIN sync_jobs j ON j.task_id = d.task_id
WHERE d.task_id = %(task_id)s AND d.day = %(day)s
FOR UPDATE OF d

-- job_for_claim --
-- The day's job, read in a statement of its own once the day is locked: a pause committed before the lock was granted is seen (the join above may show the job as it was).
SELECT status, force FROM sync_jobs WHERE task_id = %(task_id)s

-- release_paused_day --
-- A day whose own claim comes back (a database-outage hand-off) to find its job paused: pending again, for the resume to send.
UPDATE sync_job_days
SET status = 'pending', lease_until = NULL, lease_token = NULL
WHERE task_id = %(task_id)s AND day = %(day)s AND status = 'running' AND lease_token = %(lease_token)s

-- claim_day --
-- Take a locked day under a new lease: a new attempt, unless a database-outage hand-off resumes its own claim.
UPDATE sync_job_days
SET status = 'running', started_at = now(),
    attempts = attempts + CASE WHEN %(new_attempt)s THEN 1 ELSE 0 END,
    lease_token = %(lease_token)s, lease_until = now() + make_interval(secs => %(lease_s)s)
WHERE task_id = %(task_id)s AND day = %(day)s
RETURNING attempts

-- settle_cancelled_day --
-- An open day of a job that has ended, which no live lease holds: skipped, reason cancelled.
UPDATE sync_job_days
SET status = 'skipped', skip_reason = 'cancelled', finished_at = now(),
    lease_until = NULL, lease_token = NULL
WHERE task_id = %(task_id)s AND day = %(day)s AND status IN ('pending', 'running')
RETURNING day

-- lock_day --
-- Lock a day's row until commit, so concurrent deliveries settle it only once.
SELECT status FROM sync_job_days
WHERE task_id = %(task_id)s AND day = %(day)s
FOR UPDATE

-- finish_day --
-- Settle a day unless another delivery already did; a failure of a cancelled job's day is a cancelled skip.
UPDATE sync_job_days d
SET status = CASE WHEN j.status = 'cancelled' AND %(status)s = 'failed' THEN 'skipped' ELSE %(status)s END,
    skip_reason = CASE WHEN j.status = 'cancelled' AND %(status)s = 'failed' THEN 'cancelled'
                       ELSE %(skip_reason)s END,
    rows_written = %(rows)s, error = %(error)s, finished_at = now(),
    lease_until = NULL, lease_token = NULL
FROM sync_jobs j
WHERE d.task_id = %(task_id)s AND d.day = %(day)s AND d.status IN ('pending', 'running')
  AND j.task_id = d.task_id
RETURNING d.status, d.skip_reason

-- release_day --
-- Hand a day this lease holds back for a later delivery, keeping why the attempt failed; a cancelled job's day is skipped instead.
UPDATE sync_job_days d
SET status = CASE WHEN j.status = 'cancelled' THEN 'skipped' ELSE 'pending' END,
    skip_reason = CASE WHEN j.status = 'cancelled' THEN 'cancelled' END,
    finished_at = CASE WHEN j.status = 'cancelled' THEN now() END,
    error = %(error)s, lease_until = NULL, lease_token = NULL
FROM sync_jobs j
WHERE d.task_id = %(task_id)s AND d.day = %(day)s AND d.status = 'running'
  AND d.lease_token = %(lease_token)s AND j.task_id = d.task_id
RETURNING d.status

-- fail_open_days --
-- Fail every unsettled day of a job at once (an error no retry can fix); a cancelled job's days are cancelled skips.
UPDATE sync_job_days d
SET status = CASE WHEN j.status = 'cancelled' THEN 'skipped' ELSE 'failed' END,
    skip_reason = CASE WHEN j.status = 'cancelled' THEN 'cancelled' END,
    error = %(error)s, finished_at = now(), lease_until = NULL, lease_token = NULL
FROM sync_jobs j
WHERE d.task_id = %(task_id)s AND d.status IN ('pending', 'running') AND j.task_id = d.task_id

-- lock_job --
-- Serialise the "was that the last day?" check between a job's workers.
SELECT status FROM sync_jobs WHERE task_id = %(task_id)s FOR UPDATE

-- complete_job_if_done --
-- Mark a running or paused job completed once none of its days is left open (a paused job with nothing left to start has nothing left to pause).
UPDATE sync_jobs j
SET status = 'completed', finished_at = now(), updated_at = now(), message = s.message,
    paused_s = j.paused_s + coalesce(extract(epoch FROM now() - j.paused_at), 0),
    run_paused_s = j.run_paused_s + coalesce(extract(epoch FROM now() - j.paused_at), 0),
    paused_at = NULL
FROM (
    SELECT format('批量同步完成: 成功%%s, 失败%%s, 跳过%%s',
                  count(*) FILTER (WHERE status = 'success'),
                  count(*) FILTER (WHERE status = 'failed'),
                  count(*) FILTER (WHERE status = 'skipped')) AS message
    FROM sync_job_days WHERE task_id = %(task_id)s
) s
WHERE j.task_id = %(task_id)s AND j.status IN ('running', 'paused')
  AND NOT EXISTS (SELECT 1 FROM sync_job_days
                  WHERE task_id = %(task_id)s AND status IN ('pending', 'running'))
RETURNING j.task_id

-- cancel_job --
-- Stop a running or paused job: its days not yet started are skipped, running ones may finish.
UPDATE sync_jobs SET status = 'cancelled', finished_at = now(), updated_at = now(),
       message = %(message)s, cancelled_by = %(cancelled_by)s,
       paused_s = paused_s + coalesce(extract(epoch FROM now() - paused_at), 0),
       run_paused_s = run_paused_s + coalesce(extract(epoch FROM now() - paused_at), 0),
       paused_at = NULL
WHERE task_id = %(task_id)s AND status IN ('running', 'paused')
RETURNING task_id

-- lock_claimable_days --
-- Before a pause: lock the job's days a delivery could claim (pending, or held by a lapsed lease), so that claims already under way commit first and later ones see the pause.
SELECT day FROM sync_job_days
WHERE task_id = %(task_id)s
  AND (status = 'pending' OR (status = 'running' AND (lease_until IS NULL OR lease_until <= now())))
ORDER BY day
FOR UPDATE

-- pause_job --
-- Pause a running job: no day starts until it is resumed (days already claimed finish).
UPDATE sync_jobs SET status = 'paused', paused_at = now(), updated_at = now()
WHERE task_id = %(task_id)s AND status = 'running'
RETURNING task_id

-- resume_job --
-- Resume a paused job, adding the pause to its paused time.
UPDATE sync_jobs SET status = 'running', updated_at = now(),
       paused_s = paused_s + coalesce(extract(epoch FROM now() - paused_at), 0),
       run_paused_s = run_paused_s + coalesce(extract(epoch FROM now() - paused_at), 0),
       paused_at = NULL
WHERE task_id = %(task_id)s AND status = 'paused'
RETURNING task_id

-- days_to_resend --
-- A resumed job's open days that no live lease holds: their messages were consumed while it was paused (or are still due, a harmless duplicate).
SELECT day FROM sync_job_days
WHERE task_id = %(task_id)s
  AND (status = 'pending' OR (status = 'running' AND (lease_until IS NULL OR lease_until <= now())))
ORDER BY day

-- mark_days_resent --
-- Record that a resume sent these days again; not a re-send the sweeper counts towards failing a day.
UPDATE sync_job_days SET enqueued_at = now()
WHERE task_id = %(task_id)s AND day = ANY(%(days)s)

-- reopen_failed_days --
-- Retry: an ended job's failed days pending again with fresh attempts, each keeping what it failed with.
UPDATE sync_job_days
SET status = 'pending', past_errors = past_errors || coalesce(error, 'failed'), error = NULL,
    attempts = 0, enqueue_count = 0, enqueued_at = NULL, started_at = NULL, finished_at = NULL,
    rows_written = 0, lease_until = NULL, lease_token = NULL
WHERE task_id = %(task_id)s AND status = 'failed'
  AND EXISTS (SELECT 1 FROM sync_jobs WHERE task_id = %(task_id)s AND status IN ('completed', 'cancelled'))
RETURNING day

-- reopen_job --
-- Retry: an ended job running again, as a new run (its rate and time left start afresh).
UPDATE sync_jobs
SET status = 'running', finished_at = NULL, cancelled_by = NULL, message = %(message)s,
    retries = retries + 1, run_started_at = now(), run_paused_s = 0, paused_at = NULL,
    updated_at = now()
WHERE task_id = %(task_id)s AND status IN ('completed', 'cancelled')
RETURNING retries

-- skip_pending_days --
-- Skip a running or paused job's days that no worker holds (pending, or running with a lapsed lease); before cancel_job: days, then job, is the lock order.
UPDATE sync_job_days
SET status = 'skipped', skip_reason = %(reason)s, finished_at = now(),
    lease_until = NULL, lease_token = NULL
WHERE task_id = %(task_id)s
  AND (status = 'pending' OR (status = 'running' AND (lease_until IS NULL OR lease_until <= now())))
  AND EXISTS (SELECT 1 FROM sync_jobs WHERE task_id = %(task_id)s AND status IN ('running', 'paused'))

-- calendar_day --
-- Whether the exchange trades on a date, from the cached calendar.
SELECT is_open FROM trade_calendar WHERE exchange = %(exchange)s AND cal_date = %(day)s

-- upsert_calendar --
-- Cache calendar days (used with execute_values).
INSERT INTO trade_calendar (exchange, cal_date, is_open) VALUES %s
ON CONFLICT (exchange, cal_date) DO UPDATE
SET is_open = EXCLUDED.is_open, cached_at = now()

-- daily_bars_dates_stored --
-- Whether any bars of these trade dates are stored (a new day is COPYed without the upsert).
SELECT EXISTS (SELECT 1 FROM daily_bars WHERE trade_date = ANY(%(dates)s::date[])) AS stored

-- daily_bars_copy_new --
-- Bulk-load bars of days not stored yet straight into daily_bars (binary COPY, under a savepoint).
COPY daily_bars (ts_code, trade_date, open, high, low, close, pre_close,
                 change, pct_chg, vol, amount)
FROM STDIN WITH (FORMAT binary)

-- daily_bars_stage_create --
-- A per-session staging table for one day's COPY; emptied at every commit. Its types are the binary COPY's.
CREATE TEMP TABLE IF NOT EXISTS daily_bars_stage (
    ts_code text COLLATE "C" NOT NULL, trade_date date NOT NULL,
    open double precision, high double precision, low double precision,
    close double precision, pre_close double precision, change double precision,
    pct_chg double precision, vol double precision, amount double precision
) ON COMMIT DELETE ROWS

-- daily_bars_stage_copy_csv --
-- Bulk-load one day's CSV rows into the staging table.
COPY daily_bars_stage (ts_code, trade_date, open, high, low, close, pre_close,
                       change, pct_chg, vol, amount)
FROM STDIN WITH (FORMAT csv)

-- daily_bars_stage_copy_binary --
-- Bulk-load one day's rows into the staging table, in PostgreSQL's binary COPY format.
COPY daily_bars_stage (ts_code, trade_date, open, high, low, close, pre_close,
                       change, pct_chg, vol, amount)
FROM STDIN WITH (FORMAT binary)

-- daily_bars_merge_from_stage --
-- Re-sync stored days from the staging table: only rows new or changed are merged, so an unchanged day writes and locks nothing.
MERGE INTO daily_bars AS b
USING (
    SELECT s.* FROM daily_bars_stage s
    LEFT JOIN daily_bars t ON t.trade_date = s.trade_date AND t.ts_code = s.ts_code
                          AND t.trade_date = ANY(%(dates)s::date[])
    WHERE t.ts_code IS NULL
       OR (t.open, t.high, t.low, t.close, t.pre_close, t.change, t.pct_chg, t.vol, t.amount)
          IS DISTINCT FROM
          (s.open, s.high, s.low, s.close, s.pre_close, s.change, s.pct_chg, s.vol, s.amount)
) AS s
ON b.trade_date = s.trade_date AND b.ts_code = s.ts_code
   AND b.trade_date = ANY(%(dates)s::date[])
WHEN MATCHED THEN
    UPDATE SET open = s.open, high = s.high, low = s.low, close = s.close,
               pre_close = s.pre_close, change = s.change, pct_chg = s.pct_chg,
               vol = s.vol, amount = s.amount
WHEN NOT MATCHED THEN
    INSERT (ts_code, trade_date, open, high, low, close, pre_close, change, pct_chg, vol, amount)
    VALUES (s.ts_code, s.trade_date, s.open, s.high, s.low, s.close, s.pre_close, s.change,
            s.pct_chg, s.vol, s.amount)

-- daily_bars_upsert_from_stage --
-- Move staged rows into daily_bars, safe against a concurrent writer; unchanged rows are not rewritten.
INSERT INTO daily_bars AS b (ts_code, trade_date, open, high, low, close, pre_close,
                             change, pct_chg, vol, amount)
SELECT ts_code, trade_date, open, high, low, close, pre_close, change, pct_chg, vol, amount
FROM daily_bars_stage
ON CONFLICT (trade_date, ts_code) DO UPDATE
SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    pre_close = EXCLUDED.pre_close, change = EXCLUDED.change, pct_chg = EXCLUDED.pct_chg,
    vol = EXCLUDED.vol, amount = EXCLUDED.amount
WHERE (b.open, b.high, b.low, b.close, b.pre_close, b.change, b.pct_chg, b.vol, b.amount)
      IS DISTINCT FROM
      (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.pre_close,
       EXCLUDED.change, EXCLUDED.pct_chg, EXCLUDED.vol, EXCLUDED.amount)

-- daily_bars_series --
-- One stock's bars over a date range, oldest first (a key probe per synced date: see migration 006).
SELECT ts_code, trade_date, open, high, low, close, pre_close, change, pct_chg, vol, amount
FROM daily_bars_series(%(ts_code)s, coalesce(%(start)s::date, '-infinity'),
                       coalesce(%(end)s::date, 'infinity'))

-- daily_bars_cross_section --
-- Every stock's bar of one trade date, by code.
SELECT ts_code, trade_date, open, high, low, close, pre_close, change, pct_chg, vol, amount
FROM daily_bars WHERE trade_date = %(day)s ORDER BY ts_code

-- recent_jobs --
-- The newest jobs with their counts, for the history list (only those jobs' days are counted).
SELECT j.task_id, j.status, j.start_date, j.end_date, j.force, j.message,
       j.created_at, j.finished_at, j.created_by, j.cancelled_by, j.paused_at, j.retries,
       j.datasets, j.kind,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('kind', e.kind, 'actor', e.actor, 'at', e.at,
                                                     'detail', e.detail) ORDER BY e.id), '[]'::jsonb)
        FROM sync_job_events e WHERE e.task_id = j.task_id) AS events,
       c.total, c.success, c.failed, c.skipped, c.rows
FROM (SELECT * FROM sync_jobs ORDER BY created_at DESC, task_id DESC LIMIT %(limit)s) j
CROSS JOIN LATERAL (
    SELECT count(d.day) AS total,
           count(d.day) FILTER (WHERE d.status = 'success') AS success,
           count(d.day) FILTER (WHERE d.status = 'failed') AS failed,
           count(d.day) FILTER (WHERE d.status = 'skipped') AS skipped,
           coalesce(sum(d.rows_written), 0) AS rows
    FROM sync_job_days d WHERE d.task_id = j.task_id
) c
ORDER BY j.created_at DESC, j.task_id DESC

-- fail_stuck_days --
-- Fail open days of running jobs that went quiet, hold no live lease, and have used up their attempts or re-sends.
UPDATE sync_job_days d
SET status = 'failed', finished_at = now(), lease_until = NULL, lease_token = NULL,
    error = coalesce(d.error || '; ', '') || %(reason)s
FROM sync_jobs j
WHERE j.task_id = d.task_id AND j.status = 'running'
  AND d.status IN ('pending', 'running')
  AND (d.lease_until IS NULL OR d.lease_until <= now())
  AND coalesce(greatest(d.enqueued_at, d.started_at), j.created_at) < now() - make_interval(secs => %(stale_after_s)s)
  AND (d.attempts >= %(max_attempts)s OR d.enqueue_count >= %(max_enqueues)s)
RETURNING d.task_id, d.day

-- stuck_days --
-- Open days of running jobs that no worker holds or has touched for too long: never sent, lost, or their worker died.
SELECT d.task_id, d.day, d.status, d.attempts, d.enqueue_count
FROM sync_job_days d
JOIN sync_jobs j ON j.task_id = d.task_id
WHERE j.status = 'running' AND d.status IN ('pending', 'running')
  AND (d.lease_until IS NULL OR d.lease_until <= now())
  AND (
    (d.enqueued_at IS NULL AND j.created_at < now() - make_interval(secs => %(unsent_after_s)s))
    OR coalesce(greatest(d.enqueued_at, d.started_at), j.created_at) < now() - make_interval(secs => %(stale_after_s)s)
  )
ORDER BY d.task_id, d.day
LIMIT %(limit)s

-- requeue_days --
-- Hand swept days back as pending, counting the re-send (a day a live lease holds is left alone).
UPDATE sync_job_days
SET status = 'pending', enqueued_at = now(), enqueue_count = enqueue_count + 1,
    lease_until = NULL, lease_token = NULL
WHERE task_id = %(task_id)s AND day = ANY(%(days)s) AND status IN ('pending', 'running')
  AND (lease_until IS NULL OR lease_until <= now())

-- quiet_days --
-- Open days of a running job that has gone quiet: no day sent, claimed, settled or leased for a while (their message may be lost).
SELECT d.task_id, d.day
FROM sync_job_days d
JOIN sync_jobs j ON j.task_id = d.task_id
WHERE j.status = 'running' AND d.status IN ('pending', 'running')
  AND d.enqueued_at IS NOT NULL
  AND (d.lease_until IS NULL OR d.lease_until <= now())
  AND j.created_at < now() - make_interval(secs => %(quiet_s)s)
  AND NOT EXISTS (
    SELECT 1 FROM sync_job_days a
    WHERE a.task_id = d.task_id
      AND greatest(a.enqueued_at, a.started_at, a.finished_at, a.lease_until)
          > now() - make_interval(secs => %(quiet_s)s))
ORDER BY d.task_id, d.day
LIMIT %(limit)s

-- settle_ended_days --
-- Open days of jobs no longer running that no live lease holds (their worker died, or their message is gone): skipped, reason cancelled.
UPDATE sync_job_days d
SET status = 'skipped', skip_reason = 'cancelled', finished_at = now(),
    lease_until = NULL, lease_token = NULL
FROM sync_jobs j
WHERE j.task_id = d.task_id AND j.status IN ('completed', 'cancelled')
  AND d.status IN ('pending', 'running')
  AND (d.lease_until IS NULL OR d.lease_until <= now())
RETURNING d.task_id, d.day

-- prune_ended_jobs --
-- Delete a batch of jobs that ended more than the retention ago, oldest first (their days go by the foreign key's cascade).
WITH pruned AS (
    DELETE FROM sync_jobs
    WHERE task_id IN (
        SELECT task_id FROM sync_jobs
        WHERE status IN ('completed', 'cancelled')
          AND finished_at < now() - make_interval(days => %(retention_days)s)
        ORDER BY finished_at
        LIMIT %(limit)s)
    RETURNING task_id, finished_at)
-- RETURNING keeps no order of its own: report them oldest first, as they were chosen.
SELECT task_id FROM pruned ORDER BY finished_at, task_id

-- fail_day_dead_lettered --
-- A day whose message SQS gave up on: failed (a cancelled job's day: a cancelled skip), unless a delivery settled it meanwhile.
UPDATE sync_job_days d
SET status = CASE WHEN j.status = 'cancelled' THEN 'skipped' ELSE 'failed' END,
    skip_reason = CASE WHEN j.status = 'cancelled' THEN 'cancelled' END,
    finished_at = now(), lease_until = NULL, lease_token = NULL,
    error = coalesce(d.error || '; ', '') || %(reason)s
FROM sync_jobs j
WHERE d.task_id = %(task_id)s AND d.day = %(day)s AND d.status IN ('pending', 'running')
  AND j.task_id = d.task_id
RETURNING d.status

-- ping --
-- Whether the database answers at all (tells an outage from an error of one statement).
SELECT 1 AS up

-- date_states --
-- Each date of a range with its stored bars, its calendar entry and the newest job's row for it (the sync page's calendar; one index probe a date).
SELECT g.day::date AS day, s.rows AS synced_rows, s.synced_at, c.is_open,
       l.task_id, l.status AS job_status, l.skip_reason, l.error, l.rows_written,
       -- Per dataset: what is stored ([rows, expected]) and the newest job's row for the date.
       (SELECT jsonb_object_agg(x.dataset, jsonb_build_array(x.rows, x.expected_rows))
        FROM synced_dates x
        WHERE x.dataset IN ('daily', 'adj_factor', 'daily_basic', 'suspend_d')  -- a key probe each
          AND x.trade_date = g.day::date) AS synced,
       (SELECT jsonb_object_agg(y.dataset, jsonb_build_object(
                   'status', y.status, 'skip_reason', y.skip_reason, 'rows', y.rows_written,
                   'expected', y.expected_rows, 'error', y.error))
        FROM sync_job_day_datasets y
        WHERE y.task_id = l.task_id AND y.day = g.day::date) AS job_datasets
FROM generate_series(%(start)s::date, %(end)s::date, interval '1 day') AS g(day)
-- The range again on each table: read by its key over those dates, not all its years.
LEFT JOIN synced_dates s ON s.dataset = 'daily' AND s.trade_date = g.day::date
     AND s.trade_date BETWEEN %(start)s::date AND %(end)s::date
LEFT JOIN trade_calendar c ON c.exchange = %(exchange)s AND c.cal_date = g.day::date
     AND c.cal_date BETWEEN %(start)s::date AND %(end)s::date
LEFT JOIN LATERAL (
    SELECT d.task_id, d.status, d.skip_reason, d.error, d.rows_written
    FROM sync_job_days d
    WHERE d.day = g.day::date
    ORDER BY d.job_created_at DESC, d.task_id DESC
    LIMIT 1
) l ON true
ORDER BY g.day

-- write_budget --
-- A token's job starts (a retry is one) in the last hour and forced ones in the last day, and when the oldest of each that counts against its limit leaves the window (run under the creation lock).
WITH mine AS (
    SELECT created_at, force FROM sync_jobs
    WHERE created_by = %(name)s AND created_at > now() - interval '1 day'
    UNION ALL
    SELECT e.at, j.force FROM sync_job_events e JOIN sync_jobs j ON j.task_id = e.task_id
    WHERE e.kind = 'retried' AND e.actor = %(name)s AND e.at > now() - interval '1 day'
), hour AS (
    SELECT created_at FROM mine WHERE created_at > now() - interval '1 hour'
    ORDER BY created_at DESC OFFSET greatest(%(starts_limit)s - 1, 0) LIMIT 1
), day AS (
    SELECT created_at FROM mine WHERE force
    ORDER BY created_at DESC OFFSET greatest(%(forced_limit)s - 1, 0) LIMIT 1
)
SELECT (SELECT count(*) FROM mine WHERE created_at > now() - interval '1 hour') AS starts,
       (SELECT count(*) FROM mine WHERE force) AS forced,
       ceil(extract(epoch FROM (SELECT created_at FROM hour) + interval '1 hour' - now())) AS starts_retry_s,
       ceil(extract(epoch FROM (SELECT created_at FROM day) + interval '1 day' - now())) AS forced_retry_s

-- count_job_ending --
-- Count a job's ending (it just completed or was cancelled, in this transaction); returns which ending it is.
UPDATE sync_jobs SET endings = endings + 1 WHERE task_id = %(task_id)s
RETURNING endings

-- job_notice_summary --
-- A job as it ends, for its completion notice: its row, who started and cancelled it, its days counted.
SELECT j.task_id, j.status, j.start_date, j.end_date, j.force, j.message, j.created_at,
       j.finished_at, j.created_by, j.cancelled_by, j.endings,
       count(d.day) AS total,
       count(d.day) FILTER (WHERE d.status = 'success') AS success,
       count(d.day) FILTER (WHERE d.status = 'failed') AS failed,
       count(d.day) FILTER (WHERE d.status = 'skipped') AS skipped,
       count(d.day) FILTER (WHERE d.status IN ('pending', 'running')) AS open,
       coalesce(sum(d.rows_written), 0) AS rows
FROM sync_jobs j
LEFT JOIN sync_job_days d ON d.task_id = j.task_id
WHERE j.task_id = %(task_id)s
GROUP BY j.task_id

-- insert_notice --
-- One notice of one ending for one destination (the outbox row); nothing if it is already there.
INSERT INTO job_notices (task_id, ending, destination, payload)
VALUES (%(task_id)s, %(ending)s, %(destination)s, %(payload)s)
ON CONFLICT (task_id, ending, destination) DO NOTHING
RETURNING notice_id

-- claim_notice --
-- Take the next due notice (of one job, or of any; not one this round tried) under a lease, counting the attempt; other senders skip it while the lease lives.
UPDATE job_notices
SET attempts = attempts + 1, lease_token = %(lease_token)s,
    lease_until = now() + make_interval(secs => %(lease_s)s)
WHERE notice_id = (
    SELECT notice_id FROM job_notices
    WHERE status = 'pending' AND due_at <= now() AND attempts < %(max_attempts)s
      AND (lease_until IS NULL OR lease_until <= now())
      AND (%(task_id)s::text IS NULL OR task_id = %(task_id)s)
      AND NOT notice_id = ANY(%(tried)s::uuid[])
    ORDER BY due_at, created_at, destination
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING notice_id::text, task_id, ending, destination, payload, attempts

-- notice_sent --
-- A notice its destination accepted; a successful send is a fact, whoever holds the lease now.
UPDATE job_notices
SET status = 'sent', sent_at = now(), last_error = NULL, lease_until = NULL, lease_token = NULL
WHERE notice_id = %(notice_id)s::uuid AND status = 'pending'

-- notice_attempt_failed --
-- A send failed: due again after the backoff, or failed for good once its attempts are used up (only by the lease's holder).
UPDATE job_notices
SET status = CASE WHEN attempts >= %(max_attempts)s THEN 'failed' ELSE 'pending' END,
    due_at = now() + make_interval(secs => %(retry_s)s), last_error = %(error)s,
    lease_until = NULL, lease_token = NULL
WHERE notice_id = %(notice_id)s::uuid AND status = 'pending' AND lease_token = %(lease_token)s
RETURNING status

-- fail_abandoned_notices --
-- Notices whose every attempt was claimed by a sender that never reported back (it died mid-send): failed, saying so.
UPDATE job_notices
SET status = 'failed', lease_until = NULL, lease_token = NULL,
    last_error = coalesce(last_error || '; ', '') || %(reason)s
WHERE status = 'pending' AND attempts >= %(max_attempts)s
  AND (lease_until IS NULL OR lease_until <= now())
RETURNING notice_id::text, task_id, destination

-- job_notices --
-- A job's notices, oldest ending first.
SELECT notice_id::text, ending, destination, status, attempts, last_error, created_at, sent_at
FROM job_notices WHERE task_id = %(task_id)s ORDER BY ending, destination

-- insert_live_ticket --
-- A WebSocket ticket (its SHA-256), for the caller of the ticket route, valid for a few seconds.
INSERT INTO live_tickets (ticket_sha256, token_name, role, expires_at)
VALUES (%(ticket_sha256)s, %(token_name)s, %(role)s, now() + make_interval(secs => %(ttl_s)s))

-- take_live_ticket --
-- Use a ticket up: it is deleted by the one connection that presents it in time.
DELETE FROM live_tickets WHERE ticket_sha256 = %(ticket_sha256)s AND expires_at > now()
RETURNING token_name, role

-- insert_live_connection --
-- A WebSocket connection that presented a valid ticket.
INSERT INTO live_connections (connection_id, token_name) VALUES (%(connection_id)s, %(token_name)s)
ON CONFLICT (connection_id) DO UPDATE
SET token_name = EXCLUDED.token_name, task_id = NULL, connected_at = now(), subscribed_at = NULL
RETURNING connection_id

-- subscribe_live_connection --
-- Follow one job on a connection (a connection follows one job at a time), or none with a NULL task.
UPDATE live_connections SET task_id = %(task_id)s, subscribed_at = now()
WHERE connection_id = %(connection_id)s
RETURNING connection_id

-- delete_live_connection --
-- A connection that closed, or that API Gateway says is gone.
DELETE FROM live_connections WHERE connection_id = %(connection_id)s
RETURNING connection_id

-- live_subscribers --
-- The connections following a job, newest first (API Gateway closes a connection after 2 hours at the latest).
SELECT connection_id FROM live_connections
WHERE task_id = %(task_id)s AND connected_at > now() - make_interval(secs => %(max_age_s)s)
ORDER BY connected_at DESC
LIMIT %(limit)s

-- prune_live_tickets --
-- Tickets nobody used in time.
DELETE FROM live_tickets WHERE expires_at <= now()

-- prune_live_connections --
-- Connections older than API Gateway lets one live, whose disconnect never arrived.
DELETE FROM live_connections WHERE connected_at <= now() - make_interval(secs => %(max_age_s)s)
RETURNING connection_id

-- adj_factor_dates_stored --
-- Whether any adj_factor rows of these trade dates are stored (a new day is COPYed without the upsert).
SELECT EXISTS (SELECT 1 FROM adj_factor WHERE trade_date = ANY(%(dates)s::date[])) AS stored

-- adj_factor_copy_new --
-- Bulk-load adj_factor rows of days not stored yet straight into the table (binary COPY, under a savepoint).
COPY adj_factor (ts_code, trade_date, adj_factor) FROM STDIN WITH (FORMAT binary)

-- adj_factor_stage_create --
-- A per-session staging table for one day's COPY of adj_factor; emptied at every commit.
CREATE TEMP TABLE IF NOT EXISTS adj_factor_stage (
    ts_code text COLLATE "C" NOT NULL, trade_date date NOT NULL,
    adj_factor double precision
) ON COMMIT DELETE ROWS

-- adj_factor_stage_copy_csv --
-- Bulk-load one day's adj_factor CSV rows into the staging table.
COPY adj_factor_stage (ts_code, trade_date, adj_factor) FROM STDIN WITH (FORMAT csv)

-- adj_factor_stage_copy_binary --
-- Bulk-load one day's adj_factor rows into the staging table, in PostgreSQL's binary COPY format.
COPY adj_factor_stage (ts_code, trade_date, adj_factor) FROM STDIN WITH (FORMAT binary)

-- adj_factor_merge_from_stage --
-- Re-sync stored adj_factor days from the staging table: only new or changed rows are merged.
MERGE INTO adj_factor AS b
USING (
    SELECT s.* FROM adj_factor_stage s
    LEFT JOIN adj_factor t ON t.trade_date = s.trade_date AND t.ts_code = s.ts_code
                  AND t.trade_date = ANY(%(dates)s::date[])
    WHERE t.ts_code IS NULL OR (t.adj_factor) IS DISTINCT FROM (s.adj_factor)
) AS s
ON b.trade_date = s.trade_date AND b.ts_code = s.ts_code AND b.trade_date = ANY(%(dates)s::date[])
WHEN MATCHED THEN UPDATE SET adj_factor = s.adj_factor
WHEN NOT MATCHED THEN INSERT (ts_code, trade_date, adj_factor)
    VALUES (s.ts_code, s.trade_date, s.adj_factor)

-- adj_factor_upsert_from_stage --
-- Move staged rows into adj_factor, safe against a concurrent writer; unchanged rows are not rewritten.
INSERT INTO adj_factor AS b (ts_code, trade_date, adj_factor)
SELECT ts_code, trade_date, adj_factor FROM adj_factor_stage
ON CONFLICT (trade_date, ts_code) DO UPDATE SET adj_factor = EXCLUDED.adj_factor
WHERE (b.adj_factor) IS DISTINCT FROM (EXCLUDED.adj_factor)

-- daily_basic_dates_stored --
-- Whether any daily_basic rows of these trade dates are stored (a new day is COPYed without the upsert).
SELECT EXISTS (SELECT 1 FROM daily_basic WHERE trade_date = ANY(%(dates)s::date[])) AS stored

-- daily_basic_copy_new --
-- Bulk-load daily_basic rows of days not stored yet straight into the table (binary COPY, under a savepoint).
COPY daily_basic (ts_code, trade_date, close, turnover_rate, turnover_rate_f, volume_ratio, pe, pe_ttm, pb, ps, ps_ttm, dv_ratio, dv_ttm, total_share, float_share, free_share, total_mv, circ_mv) FROM STDIN WITH (FORMAT binary)

-- daily_basic_stage_create --
-- A per-session staging table for one day's COPY of daily_basic; emptied at every commit.
CREATE TEMP TABLE IF NOT EXISTS daily_basic_stage (
    ts_code text COLLATE "C" NOT NULL, trade_date date NOT NULL,
    close double precision,
    turnover_rate double precision,
    turnover_rate_f double precision,
    volume_ratio double precision,
    pe double precision,
    pe_ttm double precision,
    pb double precision,
    ps double precision,
    ps_ttm double precision,
    dv_ratio double precision,
    dv_ttm double precision,
    total_share double precision,
    float_share double precision,
    free_share double precision,
    total_mv double precision,
    circ_mv double precision
) ON COMMIT DELETE ROWS

-- daily_basic_stage_copy_csv --
-- Bulk-load one day's daily_basic CSV rows into the staging table.
COPY daily_basic_stage (ts_code, trade_date, close, turnover_rate, turnover_rate_f, volume_ratio, pe, pe_ttm, pb, ps, ps_ttm, dv_ratio, dv_ttm, total_share, float_share, free_share, total_mv, circ_mv) FROM STDIN WITH (FORMAT csv)

-- daily_basic_stage_copy_binary --
-- Bulk-load one day's daily_basic rows into the staging table, in PostgreSQL's binary COPY format.
COPY daily_basic_stage (ts_code, trade_date, close, turnover_rate, turnover_rate_f, volume_ratio, pe, pe_ttm, pb, ps, ps_ttm, dv_ratio, dv_ttm, total_share, float_share, free_share, total_mv, circ_mv) FROM STDIN WITH (FORMAT binary)

-- daily_basic_merge_from_stage --
-- Re-sync stored daily_basic days from the staging table: only new or changed rows are merged.
MERGE INTO daily_basic AS b
USING (
    SELECT s.* FROM daily_basic_stage s
    LEFT JOIN daily_basic t ON t.trade_date = s.trade_date AND t.ts_code = s.ts_code
                  AND t.trade_date = ANY(%(dates)s::date[])
    WHERE t.ts_code IS NULL OR (t.close, t.turnover_rate, t.turnover_rate_f, t.volume_ratio, t.pe, t.pe_ttm, t.pb, t.ps, t.ps_ttm, t.dv_ratio, t.dv_ttm, t.total_share, t.float_share, t.free_share, t.total_mv, t.circ_mv) IS DISTINCT FROM (s.close, s.turnover_rate, s.turnover_rate_f, s.volume_ratio, s.pe, s.pe_ttm, s.pb, s.ps, s.ps_ttm, s.dv_ratio, s.dv_ttm, s.total_share, s.float_share, s.free_share, s.total_mv, s.circ_mv)
) AS s
ON b.trade_date = s.trade_date AND b.ts_code = s.ts_code AND b.trade_date = ANY(%(dates)s::date[])
WHEN MATCHED THEN UPDATE SET close = s.close, turnover_rate = s.turnover_rate, turnover_rate_f = s.turnover_rate_f, volume_ratio = s.volume_ratio, pe = s.pe, pe_ttm = s.pe_ttm, pb = s.pb, ps = s.ps, ps_ttm = s.ps_ttm, dv_ratio = s.dv_ratio, dv_ttm = s.dv_ttm, total_share = s.total_share, float_share = s.float_share, free_share = s.free_share, total_mv = s.total_mv, circ_mv = s.circ_mv
WHEN NOT MATCHED THEN INSERT (ts_code, trade_date, close, turnover_rate, turnover_rate_f, volume_ratio, pe, pe_ttm, pb, ps, ps_ttm, dv_ratio, dv_ttm, total_share, float_share, free_share, total_mv, circ_mv)
    VALUES (s.ts_code, s.trade_date, s.close, s.turnover_rate, s.turnover_rate_f, s.volume_ratio, s.pe, s.pe_ttm, s.pb, s.ps, s.ps_ttm, s.dv_ratio, s.dv_ttm, s.total_share, s.float_share, s.free_share, s.total_mv, s.circ_mv)

-- daily_basic_upsert_from_stage --
-- Move staged rows into daily_basic, safe against a concurrent writer; unchanged rows are not rewritten.
INSERT INTO daily_basic AS b (ts_code, trade_date, close, turnover_rate, turnover_rate_f, volume_ratio, pe, pe_ttm, pb, ps, ps_ttm, dv_ratio, dv_ttm, total_share, float_share, free_share, total_mv, circ_mv)
SELECT ts_code, trade_date, close, turnover_rate, turnover_rate_f, volume_ratio, pe, pe_ttm, pb, ps, ps_ttm, dv_ratio, dv_ttm, total_share, float_share, free_share, total_mv, circ_mv FROM daily_basic_stage
ON CONFLICT (trade_date, ts_code) DO UPDATE SET close = EXCLUDED.close, turnover_rate = EXCLUDED.turnover_rate, turnover_rate_f = EXCLUDED.turnover_rate_f, volume_ratio = EXCLUDED.volume_ratio, pe = EXCLUDED.pe, pe_ttm = EXCLUDED.pe_ttm, pb = EXCLUDED.pb, ps = EXCLUDED.ps, ps_ttm = EXCLUDED.ps_ttm, dv_ratio = EXCLUDED.dv_ratio, dv_ttm = EXCLUDED.dv_ttm, total_share = EXCLUDED.total_share, float_share = EXCLUDED.float_share, free_share = EXCLUDED.free_share, total_mv = EXCLUDED.total_mv, circ_mv = EXCLUDED.circ_mv
WHERE (b.close, b.turnover_rate, b.turnover_rate_f, b.volume_ratio, b.pe, b.pe_ttm, b.pb, b.ps, b.ps_ttm, b.dv_ratio, b.dv_ttm, b.total_share, b.float_share, b.free_share, b.total_mv, b.circ_mv) IS DISTINCT FROM (EXCLUDED.close, EXCLUDED.turnover_rate, EXCLUDED.turnover_rate_f, EXCLUDED.volume_ratio, EXCLUDED.pe, EXCLUDED.pe_ttm, EXCLUDED.pb, EXCLUDED.ps, EXCLUDED.ps_ttm, EXCLUDED.dv_ratio, EXCLUDED.dv_ttm, EXCLUDED.total_share, EXCLUDED.float_share, EXCLUDED.free_share, EXCLUDED.total_mv, EXCLUDED.circ_mv)

-- suspend_d_dates_stored --
-- Whether any suspend_d rows of these trade dates are stored (a new day is COPYed without the upsert).
SELECT EXISTS (SELECT 1 FROM suspend_d WHERE trade_date = ANY(%(dates)s::date[])) AS stored

-- suspend_d_copy_new --
-- Bulk-load suspend_d rows of days not stored yet straight into the table (binary COPY, under a savepoint).
COPY suspend_d (ts_code, trade_date, suspend_timing, suspend_type) FROM STDIN WITH (FORMAT binary)

-- suspend_d_stage_create --
-- A per-session staging table for one day's COPY of suspend_d; emptied at every commit.
CREATE TEMP TABLE IF NOT EXISTS suspend_d_stage (
    ts_code text COLLATE "C" NOT NULL, trade_date date NOT NULL,
    suspend_timing text, suspend_type text COLLATE "C" NOT NULL
) ON COMMIT DELETE ROWS

-- suspend_d_stage_copy_csv --
-- Bulk-load one day's suspend_d CSV rows into the staging table.
COPY suspend_d_stage (ts_code, trade_date, suspend_timing, suspend_type) FROM STDIN WITH (FORMAT csv)

-- suspend_d_stage_copy_binary --
-- Bulk-load one day's suspend_d rows into the staging table, in PostgreSQL's binary COPY format.
COPY suspend_d_stage (ts_code, trade_date, suspend_timing, suspend_type) FROM STDIN WITH (FORMAT binary)

-- suspend_d_merge_from_stage --
-- Re-sync stored suspend_d days from the staging table: only new or changed rows are merged.
MERGE INTO suspend_d AS b
USING (
    SELECT s.* FROM suspend_d_stage s
    LEFT JOIN suspend_d t ON t.trade_date = s.trade_date AND t.ts_code = s.ts_code AND t.suspend_type = s.suspend_type
                  AND t.trade_date = ANY(%(dates)s::date[])
    WHERE t.ts_code IS NULL OR (t.suspend_timing) IS DISTINCT FROM (s.suspend_timing)
) AS s
ON b.trade_date = s.trade_date AND b.ts_code = s.ts_code AND b.suspend_type = s.suspend_type AND b.trade_date = ANY(%(dates)s::date[])
WHEN MATCHED THEN UPDATE SET suspend_timing = s.suspend_timing
WHEN NOT MATCHED THEN INSERT (ts_code, trade_date, suspend_timing, suspend_type)
    VALUES (s.ts_code, s.trade_date, s.suspend_timing, s.suspend_type)

-- suspend_d_upsert_from_stage --
-- Move staged rows into suspend_d, safe against a concurrent writer; unchanged rows are not rewritten.
INSERT INTO suspend_d AS b (ts_code, trade_date, suspend_timing, suspend_type)
SELECT ts_code, trade_date, suspend_timing, suspend_type FROM suspend_d_stage
ON CONFLICT (trade_date, ts_code, suspend_type) DO UPDATE SET suspend_timing = EXCLUDED.suspend_timing
WHERE (b.suspend_timing) IS DISTINCT FROM (EXCLUDED.suspend_timing)

-- job_datasets_open --
-- A claimed day's datasets still to settle, and whether each is forced (a fill's pairs are).
SELECT dataset, force FROM sync_job_day_datasets
WHERE task_id = %(task_id)s AND day = %(day)s AND status = 'pending'
ORDER BY dataset

-- lock_day_dataset --
-- Lock a day's dataset row until commit: its rows, its status and the synced mark commit together, once.
SELECT status FROM sync_job_day_datasets
WHERE task_id = %(task_id)s AND day = %(day)s AND dataset = %(dataset)s
FOR UPDATE

-- dataset_synced --
-- Whether a trade date of a dataset is already stored complete, and how many rows.
SELECT rows, expected_rows, synced_at FROM synced_dates
WHERE dataset = %(dataset)s AND trade_date = %(day)s

-- mark_dataset_synced --
-- Record a trade date of a dataset as fully written (and what the listings said it should hold).
INSERT INTO synced_dates (dataset, trade_date, rows, expected_rows, task_id, synced_at)
VALUES (%(dataset)s, %(day)s, %(rows)s, %(expected_rows)s, %(task_id)s, now())
ON CONFLICT (dataset, trade_date) DO UPDATE
SET rows = EXCLUDED.rows, expected_rows = EXCLUDED.expected_rows, task_id = EXCLUDED.task_id,
    synced_at = EXCLUDED.synced_at

-- settle_day_dataset --
-- Settle one dataset of a day (success with its rows, skipped with a reason, failed with its error), unless already settled.
UPDATE sync_job_day_datasets
SET status = %(status)s, skip_reason = %(skip_reason)s, rows_written = %(rows)s,
    expected_rows = %(expected_rows)s, error = %(error)s, finished_at = now(),
    attempts = attempts + CASE WHEN %(fetched)s THEN 1 ELSE 0 END
WHERE task_id = %(task_id)s AND day = %(day)s AND dataset = %(dataset)s AND status = 'pending'
RETURNING dataset

-- dataset_attempt_failed --
-- A dataset's fetch failed this attempt: counted, with why (it stays pending for the day's retry).
UPDATE sync_job_day_datasets
SET attempts = attempts + 1, error = %(error)s, expected_rows = coalesce(%(expected_rows)s, expected_rows)
WHERE task_id = %(task_id)s AND day = %(day)s AND dataset = %(dataset)s AND status = 'pending'

-- skip_day_datasets --
-- Skip every open dataset of a day for one reason (non-trading day, not published yet).
UPDATE sync_job_day_datasets
SET status = 'skipped', skip_reason = %(skip_reason)s, finished_at = now()
WHERE task_id = %(task_id)s AND day = %(day)s AND status = 'pending'

-- fail_day_datasets --
-- Fail a day's open datasets (its attempts are used up), each keeping its own error if it has one.
UPDATE sync_job_day_datasets
SET status = 'failed', error = coalesce(error, %(error)s) || %(suffix)s, finished_at = now()
WHERE task_id = %(task_id)s AND day = %(day)s AND status = 'pending'

-- fail_dataset_of_job --
-- A dataset the token may not call: failed on every open day of the job, with tushare's words (the job's other datasets go on).
UPDATE sync_job_day_datasets
SET status = 'failed', error = %(error)s, finished_at = now(),
    attempts = attempts + CASE WHEN day = %(day)s THEN 1 ELSE 0 END
WHERE task_id = %(task_id)s AND dataset = %(dataset)s AND status = 'pending'

-- settle_day_from_datasets --
-- A day's status from its datasets once none is open: failed if any failed, skipped if all were, else success; unless settled already.
UPDATE sync_job_days d
SET status = CASE WHEN j.status = 'cancelled' AND a.status = 'failed' THEN 'skipped' ELSE a.status END,
    skip_reason = CASE WHEN j.status = 'cancelled' AND a.status = 'failed' THEN 'cancelled'
                       ELSE a.skip_reason END,
    rows_written = a.rows, error = a.error, finished_at = now(),
    lease_until = NULL, lease_token = NULL
FROM (
    SELECT CASE WHEN bool_or(status = 'failed') THEN 'failed'
                WHEN bool_and(status = 'skipped') THEN 'skipped' ELSE 'success' END AS status,
           CASE WHEN bool_and(status = 'skipped') THEN min(skip_reason) END AS skip_reason,
           coalesce(sum(rows_written), 0) AS rows,
           string_agg(dataset || ': ' || coalesce(error, 'failed'), '; ' ORDER BY dataset)
               FILTER (WHERE status = 'failed') AS error
    FROM sync_job_day_datasets
    WHERE task_id = %(task_id)s AND day = %(day)s
    HAVING count(*) > 0 AND NOT bool_or(status = 'pending')
) a, sync_jobs j
WHERE d.task_id = %(task_id)s AND d.day = %(day)s AND d.status IN ('pending', 'running')
  AND j.task_id = d.task_id
RETURNING d.status, d.skip_reason, d.rows_written, d.error

-- backfill_day_datasets --
-- A day of a job created before datasets existed (migration 010) gets its job's datasets (daily), pending.
INSERT INTO sync_job_day_datasets (task_id, day, dataset)
SELECT d.task_id, d.day, ds
FROM sync_job_days d JOIN sync_jobs j ON j.task_id = d.task_id
CROSS JOIN unnest(j.datasets) AS ds
WHERE d.task_id = %(task_id)s AND d.day = %(day)s
  AND NOT EXISTS (SELECT 1 FROM sync_job_day_datasets x WHERE x.task_id = d.task_id AND x.day = d.day)
ON CONFLICT DO NOTHING
RETURNING dataset, force

-- days_with_datasets_settled --
-- A job's open days that no live lease holds whose every dataset is settled (another day's permission failure settled them).
SELECT d.day FROM sync_job_days d
WHERE d.task_id = %(task_id)s
  AND (d.status = 'pending' OR (d.status = 'running' AND (d.lease_until IS NULL OR d.lease_until <= now())))
  AND EXISTS (SELECT 1 FROM sync_job_day_datasets x WHERE x.task_id = d.task_id AND x.day = d.day)
  AND NOT EXISTS (SELECT 1 FROM sync_job_day_datasets x
                  WHERE x.task_id = d.task_id AND x.day = d.day AND x.status = 'pending')
ORDER BY d.day
FOR UPDATE OF d SKIP LOCKED

-- release_day_unspent --
-- Hand a day this lease holds back without spending an attempt (the tushare quota is in use: nothing was tried).
UPDATE sync_job_days d
SET status = CASE WHEN j.status = 'cancelled' THEN 'skipped' ELSE 'pending' END,
    skip_reason = CASE WHEN j.status = 'cancelled' THEN 'cancelled' END,
    finished_at = CASE WHEN j.status = 'cancelled' THEN now() END,
    attempts = greatest(d.attempts - CASE WHEN %(undo_attempt)s THEN 1 ELSE 0 END, 0),
    lease_until = NULL, lease_token = NULL
FROM sync_jobs j
WHERE d.task_id = %(task_id)s AND d.day = %(day)s AND d.status = 'running'
  AND d.lease_token = %(lease_token)s AND j.task_id = d.task_id
RETURNING d.status

-- insert_job_day_datasets --
-- A pending row per day of the job and dataset it names.
INSERT INTO sync_job_day_datasets (task_id, day, dataset)
SELECT d.task_id, d.day, ds
FROM sync_job_days d CROSS JOIN unnest(%(datasets)s::text[]) AS ds
WHERE d.task_id = %(task_id)s

-- insert_fill_days --
-- A fill job's days: only those with a faulty dataset.
INSERT INTO sync_job_days (task_id, day)
SELECT %(task_id)s, day FROM unnest(%(days)s::date[]) AS day

-- insert_fill_pairs --
-- A fill job's (day, dataset) pairs, each forced: fetched again even if a synced mark says it is whole.
INSERT INTO sync_job_day_datasets (task_id, day, dataset, force)
SELECT %(task_id)s, p.day, p.dataset, true
FROM unnest(%(days)s::date[], %(datasets)s::text[]) AS p(day, dataset)

-- job_day_datasets --
-- Every (day, dataset) of a job, for its days list.
SELECT day, dataset, status, skip_reason, attempts, rows_written, expected_rows, error, force
FROM sync_job_day_datasets WHERE task_id = %(task_id)s ORDER BY day, dataset

-- quota_slots --
-- Make sure a (token, api) has a row for each call its window allows (rows past the limit are left unused).
INSERT INTO tushare_quota (token_fp, api, slot)
SELECT %(token_fp)s, %(api)s, s FROM generate_series(0, %(limit)s - 1) AS s
ON CONFLICT DO NOTHING

-- quota_take --
-- Take one call of an interface's quota: the row whose last use left the window longest ago, if any has (one statement; concurrent takers skip each other's rows; a scalar subquery, run once, where a join could be rescanned and take a row per rescan).
UPDATE tushare_quota SET used_at = clock_timestamp()
WHERE token_fp = %(token_fp)s AND api = %(api)s AND slot = (
    SELECT slot FROM tushare_quota
    WHERE token_fp = %(token_fp)s AND api = %(api)s AND slot < %(limit)s
      AND used_at <= clock_timestamp() - make_interval(secs => %(window_s)s)
    ORDER BY used_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING slot

-- quota_free_in --
-- Seconds until an interface's next call is allowed (its oldest use leaves the window); an unused row (-infinity) here is being taken by another taker, so only used rows count (0: none yet, look again; NULL: no rows).
SELECT CASE WHEN count(*) = 0 THEN NULL
            ELSE coalesce(extract(epoch FROM min(used_at) FILTER (WHERE used_at > '-infinity')
                                  + make_interval(secs => %(window_s)s) - clock_timestamp()), 0)
       END::float8 AS free_in_s
FROM tushare_quota
WHERE token_fp = %(token_fp)s AND api = %(api)s AND slot < %(limit)s

-- upsert_listings --
-- Store listings as fetched (used with execute_values): every status, with list and delist dates.
INSERT INTO stock_basic (ts_code, symbol, name, area, industry, market, exchange, list_status,
                         list_date, delist_date, refreshed_at)
VALUES %s
ON CONFLICT (ts_code) DO UPDATE
SET symbol = EXCLUDED.symbol, name = EXCLUDED.name, area = EXCLUDED.area,
    industry = EXCLUDED.industry, market = EXCLUDED.market, exchange = EXCLUDED.exchange,
    list_status = EXCLUDED.list_status, list_date = EXCLUDED.list_date,
    delist_date = EXCLUDED.delist_date, refreshed_at = EXCLUDED.refreshed_at

-- source_refreshed --
-- When a reference table (stock_basic) was last fetched whole, and its age in seconds.
SELECT refreshed_at, rows, extract(epoch FROM now() - refreshed_at)::float8 AS age_s
FROM source_refreshes WHERE name = %(name)s AND refreshed_at > '-infinity'

-- mark_source_refreshed --
-- Record that a reference table was fetched whole just now (and release the claim to fetch it).
INSERT INTO source_refreshes (name, refreshed_at, rows) VALUES (%(name)s, now(), %(rows)s)
ON CONFLICT (name) DO UPDATE
SET refreshed_at = EXCLUDED.refreshed_at, rows = EXCLUDED.rows, claimed_until = NULL

-- release_source_claim --
-- A fetch of a reference table that failed: the claim goes, so another worker may try at once.
UPDATE source_refreshes SET claimed_until = NULL WHERE name = %(name)s

-- claim_source_refresh --
-- Claim the fetch of a stale reference table for a while; nothing when it is fresh or another worker holds the claim.
INSERT INTO source_refreshes (name, refreshed_at, rows, claimed_until)
VALUES (%(name)s, '-infinity', 0, now() + make_interval(secs => %(claim_s)s))
ON CONFLICT (name) DO UPDATE SET claimed_until = EXCLUDED.claimed_until
WHERE source_refreshes.refreshed_at < now() - make_interval(secs => %(max_age_s)s)
  AND (source_refreshes.claimed_until IS NULL OR source_refreshes.claimed_until < now())
RETURNING name

-- listed_codes --
-- The stocks listed on a date (list_date <= day < delist_date): who has an adj_factor row.
SELECT ts_code FROM stock_basic
WHERE list_date <= %(day)s AND (delist_date IS NULL OR delist_date > %(day)s)
ORDER BY ts_code

-- traded_codes --
-- The stocks listed on a date and not suspended all day (no S row without a timing): who has a daily and a daily_basic row.
SELECT b.ts_code FROM stock_basic b
WHERE b.list_date <= %(day)s AND (b.delist_date IS NULL OR b.delist_date > %(day)s)
  AND NOT EXISTS (SELECT 1 FROM suspend_d s
                  WHERE s.trade_date = %(day)s AND s.ts_code = b.ts_code AND s.suspend_type = 'S'
                    AND coalesce(s.suspend_timing, '') = '')
ORDER BY b.ts_code

-- daily_bars_day_counts --
-- Rows stored per trade date of a range (an audit's counts; the key's leading date reads each date's rows as one range).
SELECT trade_date, count(*) AS n FROM daily_bars
WHERE trade_date BETWEEN %(start)s AND %(end)s
GROUP BY trade_date

-- adj_factor_day_counts --
-- Rows stored per trade date of a range (an audit's counts; the key's leading date reads each date's rows as one range).
SELECT trade_date, count(*) AS n FROM adj_factor
WHERE trade_date BETWEEN %(start)s AND %(end)s
GROUP BY trade_date

-- daily_basic_day_counts --
-- Rows stored per trade date of a range (an audit's counts; the key's leading date reads each date's rows as one range).
SELECT trade_date, count(*) AS n FROM daily_basic
WHERE trade_date BETWEEN %(start)s AND %(end)s
GROUP BY trade_date

-- suspend_d_day_counts --
-- Rows stored per trade date of a range (an audit's counts; the key's leading date reads each date's rows as one range).
SELECT trade_date, count(*) AS n FROM suspend_d
WHERE trade_date BETWEEN %(start)s AND %(end)s
GROUP BY trade_date

-- audit_synced --
-- The synced marks of some datasets over a range: rows written, and the count the listings gave then.
SELECT dataset, trade_date, rows, expected_rows FROM synced_dates
WHERE dataset = ANY(%(datasets)s::text[]) AND trade_date BETWEEN %(start)s AND %(end)s

-- audit_expected --
-- Per trade date: the stocks listed, those also not suspended all day, and whether that date's suspensions are stored.
SELECT d.day,
       (SELECT count(*) FROM stock_basic b
        WHERE b.list_date <= d.day AND (b.delist_date IS NULL OR b.delist_date > d.day)) AS listed,
       (SELECT count(*) FROM stock_basic b
        WHERE b.list_date <= d.day AND (b.delist_date IS NULL OR b.delist_date > d.day)
          AND NOT EXISTS (SELECT 1 FROM suspend_d s
                          WHERE s.trade_date = d.day AND s.ts_code = b.ts_code AND s.suspend_type = 'S'
                            AND coalesce(s.suspend_timing, '') = '')) AS traded,
       EXISTS (SELECT 1 FROM synced_dates x WHERE x.dataset = 'suspend_d' AND x.trade_date = d.day)
           AS suspensions_known
FROM unnest(%(days)s::date[]) AS d(day)

-- calendar_range --
-- The cached calendar over a range.
SELECT cal_date, is_open FROM trade_calendar
WHERE exchange = %(exchange)s AND cal_date BETWEEN %(start)s AND %(end)s
