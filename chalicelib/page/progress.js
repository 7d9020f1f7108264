/* The watched job: polled every 2 seconds (the seed's interval) until it ends or for 30
 * minutes, drawn in place (bar, counts, times, summary, why days were skipped), cancelled on
 * request. What changes its state (started, a day failed, paused or resumed elsewhere, ended,
 * polling stopped) is announced; a poll is not. Pause and resume are job-controls.js's: it
 * hears `job-status` and tells what it did by `job-updated`.
 */
import { announce } from './announcer.js';
import { callApi } from './api.js';
import { emit, on } from './bus.js';
import { $, h, setAttr, setText, show } from './dom.js';
import { fmtDuration, fmtInt, t } from './i18n.js';
import { initSkips, renderSkips, skipsText } from './skips.js';

const POLL_MS = 2000;
const ENDED = ['completed', 'cancelled'];
const ACTIVE = ['running', 'paused'];
const WATCH_LIMIT_MS = 30 * 60 * 1000;
const FAILED_NAMED = 3; // failed days named one by one in an announcement, then counted

let job = null; // {taskId, since, timer, stopped, quietFirst, lastCurrent, failedSeen, failedCount}
let progress = null;
let conflict = false; // watching the job a start was refused for (409)
let pollError = null;
let controlError = null; // what the API said to a pause or resume it refused
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
  // A pause or resume answered with the job's progress: show it now, and say nothing twice.
  on('job-updated', ({ progress: p }) => {
    if (!job || !p || p.task_id !== job.taskId) return;
    progress = p;
    job.lastStatus = p.status;
    controlError = null;
    render();
  });
  on('job-error', ({ message }) => { controlError = message; render(); });
  initSkips();
  // Polling stopped on a 401 (or a 404): signed in again, it starts over.
  on('auth', () => { if (job && job.stopped) watch({ taskId: job.taskId }); });
  render();
}

export function watchedTaskId() { return job ? job.taskId : null; }

function watch({ taskId, conflict: refused, started, focus, announced }) {
  if (job && job.timer) clearTimeout(job.timer);
  const same = job && job.taskId === taskId;
  job = {
    taskId, since: Date.now(), timer: null, stopped: false, lastCurrent: -1,
    lastStatus: same ? job.lastStatus : null,
    // A job found running (on load, from the history): its earlier failures are not news.
    quietFirst: !started && !same,
    failedSeen: same ? job.failedSeen : new Set(), failedCount: same ? job.failedCount : 0,
  };
  if (!same) progress = null;
  conflict = refused || false; // true, or the refused-for job's status ('paused')
  pollError = null;
  controlError = null;
  timedOut = false;
  if (started) announce(t('ann_started', started));
  render();
  if (focus) {
    // Watching from the job history: the person goes where the progress is.
    $('progress-heading').focus({ preventScroll: true });
    $('progress-card').scrollIntoView({ block: 'nearest' });
  }
  poll(!!focus && !announced); // `announced`: whoever asked to watch said why already
}

async function poll(announceWatching) {
  const w = job;
  if (!w) return;
  w.timer = null;
  const answer = await callApi('GET', 'sync/batch/progress/' + encodeURIComponent(w.taskId));
  if (job !== w) return; // another job is being watched now
  if (answer.ok) {
    const p = answer.data;
    if (announceWatching) announce(t('ann_watching', { start: p.start_date, end: p.end_date }));
    progress = p;
    pollError = null;
    // Which days failed is said before anything that follows it (the end, say); days that
    // had failed before the page first saw the job are not news.
    if (p.failed > w.failedCount) await announceFailedDays(w, p.failed, w.quietFirst && w.lastCurrent === -1);
    if (job !== w) return;
    if (p.current !== w.lastCurrent) {
      w.lastCurrent = p.current;
      emit('job-progress', { progress: p });
    }
    if (w.lastStatus !== null && w.lastStatus !== p.status && ACTIVE.includes(p.status)) {
      // Paused or resumed elsewhere (another tab, the CLI): news.
      announce(t(p.status === 'paused' ? 'ann_paused' : 'ann_resumed'));
    }
    w.lastStatus = p.status;
    if (ENDED.includes(p.status)) {
      ended(p);
      return;
    }
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
    timedOut = true;
    render();
    emitStatus();
    announce(t('poll_timeout'));
    return;
  }
  render();
  w.timer = setTimeout(() => poll(null), POLL_MS);
}

function ended(p) {
  render();
  announce(summaryText(p) + skipsText(p, ' '));
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
  const cls = { running: 'running', paused: 'paused', completed: 'ok', cancelled: 'muted' }[status] || 'muted';
  return { text: t('status_' + status) || status, cls };
}

function summaryText(p) {
  const counts = { success: p.success, failed: p.failed, skipped: p.skipped };
  return t(p.status === 'cancelled' ? 'summary_cancelled' : 'summary_completed', counts) + ' '
    + t('summary_rows', { rows: fmtInt(p.rows), elapsed: fmtDuration(p.elapsed_s) });
}

/** What the job controls need: which job, its status, and whether it is still watched. */
function emitStatus() {
  emit('job-status', { taskId: job ? job.taskId : null, status: progress ? progress.status : null,
    watching: !!job && !timedOut && !job.stopped });
}

function render() {
  renderView();
  emitStatus();
}

function renderView() {
  show($('progress-empty'), !job);
  show($('progress-view'), !!job);
  const badge = $('job-status');
  if (!job) { show(badge, false); return; }
  const p = progress;

  const notice = $('conflict-notice');
  const pausedJob = p ? p.status === 'paused' : conflict === 'paused';
  const words = pausedJob ? [t('job_paused'), t('conflict_suffix_paused')] : [t('job_running'), t('conflict_suffix')];
  if (notice.dataset.lang !== words.join('|')) {
    notice.dataset.lang = words.join('|');
    notice.replaceChildren(h('strong', { text: words[0] }), h('span', { class: 'block', text: words[1] }));
  }
  show(notice, conflict && (!p || ACTIVE.includes(p.status)));

  setText($('task-id'), job.taskId);
  setText($('task-range'), p ? `${p.start_date} → ${p.end_date}${p.force ? ' · ' + t('forced') : ''}` : '');

  const percent = p ? p.percent : 0;
  const bar = $('progress-bar');
  setAttr(bar, 'aria-valuenow', percent);
  setAttr(bar, 'aria-label', t('progress_label', { percent }));
  bar.classList.toggle('done', !!p && ENDED.includes(p.status));
  bar.classList.toggle('paused', !!p && p.status === 'paused');
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
  const active = !!p && ACTIVE.includes(p.status);
  let line = '';
  if (running) {
    line = p.current === 0 || !p.current_date ? t('line_starting', { total: p.total })
      : t('line_running', { date: p.current_date });
  } else if (pausedJob) {
    line = t('line_paused', { current: p.current, total: p.total });
  }
  setText($('progress-line'), line);
  setText($('stat-current'), p && p.current_date ? p.current_date : '—');
  setText($('stat-done'), p ? `${p.current} / ${p.total}` : '—');
  setText($('stat-success'), p ? fmtInt(p.success) : '0');
  setText($('stat-failed'), p ? fmtInt(p.failed) : '0');
  setText($('stat-skipped'), p ? fmtInt(p.skipped) : '0');
  setText($('stat-rows'), p ? fmtInt(p.rows) : '0');
  setText($('stat-elapsed'), p ? fmtDuration(p.elapsed_s) : '—');
  setText($('stat-eta'), etaText(p));

  renderSummary(p, active);
  renderSkips(p, active);

  const pollText = timedOut ? t('poll_timeout') : controlError ? t('control_failed', { message: controlError })
    : pollError ? t('poll_error', { message: pollError }) : '';
  setText($('poll-notice'), pollText);
  show($('poll-notice'), !!pollText);
  show($('cancel-button'), active && !timedOut);
  show($('resume-button'), active && timedOut);
}

/** The API's own estimate (this run's rate, paused time left out); an older API's: ours. */
function etaText(p) {
  if (!p || ENDED.includes(p.status)) return '—';
  if (p.status === 'paused') return t('eta_paused');
  if (p.eta_s === undefined) {
    return p.current > 0 ? fmtDuration((p.elapsed_s / p.current) * (p.total - p.current)) : t('eta_pending');
  }
  return p.eta_s === null ? t('eta_pending') : fmtDuration(p.eta_s);
}

function renderSummary(p, active) {
  const summary = $('summary');
  if (!p || active) { show(summary, false); return; }
  const counts = { success: p.success, failed: p.failed, skipped: p.skipped };
  const key = [p.status, p.success, p.failed, p.skipped, p.rows, p.elapsed_s, t('summary_rows')].join('|');
  if (summary.dataset.key !== key) {
    summary.dataset.key = key;
    summary.replaceChildren(
      h('strong', { text: t(p.status === 'cancelled' ? 'summary_cancelled' : 'summary_completed', counts) }),
      h('span', { text: ' ' + t('summary_rows', { rows: fmtInt(p.rows), elapsed: fmtDuration(p.elapsed_s) }) }),
      ...(p.failed > 0 ? [h('span', { class: 'block', text: t('summary_failed_hint', { failed: p.failed }) + ' ' + t('summary_retry_hint') })] : []));
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
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    progress = answer.data;
    ended(answer.data);
    // The cancel button is gone with the running job: the outcome takes the focus.
    $('summary').focus();
  } else {
    pollError = answer.message;
    render();
  }
}
