/* The watched job: polled every 2 seconds (the seed's interval) until it ends or for 30
 * minutes, drawn in place (bar, counts, times, summary), cancelled on request. What changes
 * its state (started, a day failed, ended, polling stopped) is announced; a poll is not.
 * Where the job's progress is pushed (live.js), polling stops while pushes arrive: a poll
 * only every 30 s without one, in case a push went missing; it resumes at once when the
 * pushes stop.
 */
import { announce } from './announcer.js';
import { callApi } from './api.js';
import { emit, on } from './bus.js';
import { $, h, setAttr, setText, show } from './dom.js';
import { fmtDuration, fmtInt, t } from './i18n.js';

const POLL_MS = 2000;
const PUSHED_CHECK_MS = 30_000; // while pushes arrive: a poll only after this long without one
const ENDED = ['completed', 'cancelled'];
const WATCH_LIMIT_MS = 30 * 60 * 1000;
const FAILED_NAMED = 3; // failed days named one by one in an announcement, then counted

let job = null; // {taskId, since, timer, stopped, quietFirst, lastCurrent, failedSeen, failedCount}
let progress = null;
let conflict = false; // watching the job a start was refused for (409)
let pollError = null;
let timedOut = false;

export function init() {
  $('cancel-button').addEventListener('click', onCancel);
  $('resume-button').addEventListener('click', () => {
    if (!job) return;
    watch({ taskId: job.taskId });
    $('cancel-button').focus(); // the button pressed is gone; its partner takes its place
  });
  on('watch', watch);
  on('lang', render);
  // Polling stopped on a 401 (or a 404): signed in again, it starts over.
  on('auth', () => { if (job && job.stopped) watch({ taskId: job.taskId }); });
  on('live-progress', onPushed);
  on('live-state', onLiveState);
  render();
}

export function watchedTaskId() { return job ? job.taskId : null; }

function watch({ taskId, conflict: refused, started, focus }) {
  if (job && job.timer) clearTimeout(job.timer);
  const same = job && job.taskId === taskId;
  job = {
    taskId, since: Date.now(), timer: null, stopped: false, lastCurrent: -1, pushed: false, done: false, live: false,
    // A job found running (on load, from the history): its earlier failures are not news.
    quietFirst: !started && !same,
    failedSeen: same ? job.failedSeen : new Set(), failedCount: same ? job.failedCount : 0,
  };
  if (!same) progress = null;
  conflict = !!refused;
  pollError = null;
  timedOut = false;
  if (started) announce(t('ann_started', started));
  render();
  if (focus) {
    // Watching from the job history: the person goes where the progress is.
    $('progress-heading').focus({ preventScroll: true });
    $('progress-card').scrollIntoView({ block: 'nearest' });
  }
  poll(!!focus);
}

async function poll(announceWatching) {
  const w = job;
  if (!w || w.done) return;
  w.timer = null;
  const answer = await callApi('GET', 'sync/batch/progress/' + encodeURIComponent(w.taskId));
  if (job !== w || w.done) return; // another job is being watched now, or this one ended
  if (answer.ok) {
    if (await take(w, answer.data, announceWatching)) return;
  } else {
    if (!pollError) announce(t('ann_poll_error'));
    pollError = answer.message;
    if (answer.status === 404 || answer.status === 401) {
      w.stopped = true;
      render();
      return;
    }
  }
  if (Date.now() - w.since >= WATCH_LIMIT_MS) {
    // Watching stops after 30 minutes, pushed or polled; the resume button starts it again.
    timedOut = true;
    w.live = false;
    emit('live-unwatch');
    render();
    announce(t('poll_timeout'));
    return;
  }
  render();
  schedule(w);
}

function schedule(w) {
  if (w.timer) clearTimeout(w.timer);
  w.timer = setTimeout(() => poll(null), w.pushed ? PUSHED_CHECK_MS : POLL_MS);
}

/** Whether `p` is news: polls and pushes may cross, and an older picture must not win. */
function newer(p) {
  if (!progress || progress.task_id !== p.task_id) return true;
  if (ENDED.includes(p.status)) return true;
  if (p.elapsed_s !== progress.elapsed_s) return p.elapsed_s > progress.elapsed_s;
  return p.current >= progress.current;
}

/** A progress answer, polled or pushed; returns true once the job has ended. */
async function take(w, p, announceWatching) {
  if (!newer(p)) return false;
  if (announceWatching) announce(t('ann_watching', { start: p.start_date, end: p.end_date }));
  progress = p;
  pollError = null;
  // Which days failed is said before anything that follows it (the end, say); days that
  // had failed before the page first saw the job are not news.
  if (p.failed > w.failedCount) await announceFailedDays(w, p.failed, w.quietFirst && w.lastCurrent === -1);
  if (job !== w || w.done) return true;
  if (p.current !== w.lastCurrent) {
    w.lastCurrent = p.current;
    emit('job-progress', { progress: p });
  }
  if (p.status !== 'running') {
    ended(p);
    return true;
  }
  if (!w.live) {
    w.live = true; // running: ask for pushes (live.js), which stop the 2 s polls once they come
    emit('live-watch', { taskId: w.taskId });
  }
  return false;
}

function onPushed({ taskId, progress: p }) {
  const w = job;
  if (!w || w.done || w.taskId !== taskId || w.stopped || timedOut) return;
  w.pushed = true;
  take(w, p, null).then((over) => {
    if (over || job !== w) return;
    render();
    schedule(w); // the next poll only if no push comes for a while
  });
}

function onLiveState({ taskId, up }) {
  const w = job;
  if (!w || w.done || w.taskId !== taskId || up || !w.pushed) return; // never pushed: polls go on
  // Pushes stopped: poll at once, then every 2 s.
  w.pushed = false;
  if (!w.stopped && !timedOut && (!progress || progress.status === 'running')) {
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    poll(null);
  }
}

function ended(p) {
  const w = job;
  if (w) {
    w.done = true;
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
  }
  emit('live-unwatch');
  render();
  announce(summaryText(p));
  emit('job-ended', { progress: p });
  emit('jobs-changed');
}

async function announceFailedDays(w, failed, silently) {
  w.failedCount = failed;
  const answer = await callApi('GET', 'sync/batch/days/' + encodeURIComponent(w.taskId));
  if (!answer.ok || job !== w) return;
  const fresh = answer.data.filter((d) => d.status === 'failed' && !w.failedSeen.has(d.day));
  fresh.forEach((d) => w.failedSeen.add(d.day));
  if (silently) return;
  for (const d of fresh.slice(0, FAILED_NAMED)) announce(t('ann_day_failed', { date: d.day, error: d.error || '' }));
  if (fresh.length > FAILED_NAMED) announce(t('ann_more_failed', { n: fresh.length - FAILED_NAMED }));
}

function statusBadge(status, failed) {
  if (status === 'completed' && failed > 0) return { text: t('status_completed_failures'), cls: 'warn' };
  const cls = { running: 'running', completed: 'ok', cancelled: 'muted' }[status] || 'muted';
  return { text: t('status_' + status) || status, cls };
}

function summaryText(p) {
  const counts = { success: p.success, failed: p.failed, skipped: p.skipped };
  return t(p.status === 'cancelled' ? 'summary_cancelled' : 'summary_completed', counts) + ' '
    + t('summary_rows', { rows: fmtInt(p.rows), elapsed: fmtDuration(p.elapsed_s) });
}

function render() {
  show($('progress-empty'), !job);
  show($('progress-view'), !!job);
  const badge = $('job-status');
  if (!job) { show(badge, false); return; }
  const p = progress;

  const notice = $('conflict-notice');
  if (notice.dataset.lang !== t('job_running')) {
    notice.dataset.lang = t('job_running');
    notice.replaceChildren(h('strong', { text: t('job_running') }), h('span', { class: 'block', text: t('conflict_suffix') }));
  }
  show(notice, conflict && (!p || p.status === 'running'));

  setText($('task-id'), job.taskId);
  setText($('task-range'), p ? `${p.start_date} → ${p.end_date}${p.force ? ' · ' + t('forced') : ''}` : '');

  const percent = p ? p.percent : 0;
  const bar = $('progress-bar');
  setAttr(bar, 'aria-valuenow', percent);
  setAttr(bar, 'aria-label', t('progress_label', { percent }));
  bar.classList.toggle('done', !!p && p.status !== 'running');
  bar.classList.toggle('has-failures', !!p && p.failed > 0);
  $('progress-fill').style.width = percent + '%';
  setText($('percent'), percent + '%');

  if (p) {
    const b = statusBadge(p.status, p.failed);
    setText(badge, b.text);
    badge.className = 'badge ' + b.cls;
  }
  show(badge, !!p);

  const running = !!p && p.status === 'running';
  let line = '';
  if (running) {
    line = p.current === 0 || !p.current_date ? t('line_starting', { total: p.total })
      : t('line_running', { date: p.current_date });
  }
  setText($('progress-line'), line);
  setText($('stat-current'), p && p.current_date ? p.current_date : '—');
  setText($('stat-done'), p ? `${p.current} / ${p.total}` : '—');
  setText($('stat-success'), p ? fmtInt(p.success) : '0');
  setText($('stat-failed'), p ? fmtInt(p.failed) : '0');
  setText($('stat-skipped'), p ? fmtInt(p.skipped) : '0');
  setText($('stat-rows'), p ? fmtInt(p.rows) : '0');
  setText($('stat-elapsed'), p ? fmtDuration(p.elapsed_s) : '—');
  let eta = '—';
  if (running) eta = p.current > 0 ? fmtDuration((p.elapsed_s / p.current) * (p.total - p.current)) : t('eta_pending');
  setText($('stat-eta'), eta);

  renderSummary(p, running);

  const pollText = timedOut ? t('poll_timeout') : pollError ? t('poll_error', { message: pollError }) : '';
  setText($('poll-notice'), pollText);
  show($('poll-notice'), !!pollText);
  show($('cancel-button'), running && !timedOut);
  show($('resume-button'), running && timedOut);
}

function renderSummary(p, running) {
  const summary = $('summary');
  if (!p || running) { show(summary, false); return; }
  const counts = { success: p.success, failed: p.failed, skipped: p.skipped };
  const key = [p.status, p.success, p.failed, p.skipped, p.rows, p.elapsed_s, t('summary_rows')].join('|');
  if (summary.dataset.key !== key) {
    summary.dataset.key = key;
    summary.replaceChildren(
      h('strong', { text: t(p.status === 'cancelled' ? 'summary_cancelled' : 'summary_completed', counts) }),
      h('span', { text: ' ' + t('summary_rows', { rows: fmtInt(p.rows), elapsed: fmtDuration(p.elapsed_s) }) }),
      ...(p.failed > 0 ? [h('span', { class: 'block', text: t('summary_failed_hint', { failed: p.failed }) })] : []));
  }
  summary.className = 'notice ' + (p.status === 'cancelled' ? 'muted' : p.failed > 0 ? 'warn' : 'ok');
  show(summary, true);
}

async function onCancel() {
  const w = job;
  if (!w || !window.confirm(t('cancel_confirm'))) return;
  const answer = await callApi('POST', 'sync/batch/cancel/' + encodeURIComponent(w.taskId));
  if (job !== w) return;
  if (answer.ok) {
    progress = answer.data;
    ended(answer.data);
    // The cancel button is gone with the running job: the outcome takes the focus.
    $('summary').focus();
  } else {
    pollError = answer.message;
    render();
  }
}
