/* The watched job: polled every 2 seconds (the seed's interval) until it ends or for 30
 * minutes, drawn in place by progress-view.js (bar, counts, times, summary, why days were
 * skipped), cancelled on request. What changes its state (started, a day failed, paused or
 * resumed elsewhere, ended, polling stopped) is announced; a poll is not.
 * Where the job's progress is pushed (live.js), polling stops while pushes arrive: a poll
 * only every 30 s without one, in case a push went missing; it resumes at once when the
 * pushes stop. Pause and resume are job-controls.js's: it hears `job-status` and tells
 * what it did by `job-updated`.
 */
import { announce } from './announcer.js';
import { callApi } from './api.js';
import { emit, on } from './bus.js';
import { $ } from './dom.js';
import { t } from './i18n.js';
import { ACTIVE, ENDED, renderView, summaryText } from './progress-view.js';
import { initSkips, skipsText } from './skips.js';

const POLL_MS = 2000;
const PUSHED_CHECK_MS = 30_000; // while pushes arrive: a poll only after this long without one
const WATCH_LIMIT_MS = 30 * 60 * 1000;
const FAILED_NAMED = 3; // failed days named one by one in an announcement, then counted

let job = null; // {taskId, since, timer, stopped, quietFirst, lastCurrent, failedSeen, failedCount}
let progress = null;
let conflict = false; // watching the job a start was refused for (409): true, or its status
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
  // A pause or resume answered with the job's progress: show it now. Its push may have come
  // first; either way the change is said once (statusChanged).
  on('job-updated', ({ progress: p }) => {
    if (!job || !p || p.task_id !== job.taskId) return;
    progress = p;
    statusChanged(job, p);
    controlError = null;
    render();
  });
  on('job-error', ({ message }) => { controlError = message; render(); });
  initSkips();
  // Polling stopped on a 401 (or a 404): signed in again, it starts over.
  on('auth', () => { if (job && job.stopped) watch({ taskId: job.taskId }); });
  on('live-progress', onPushed);
  on('live-state', onLiveState);
  render();
}

export function watchedTaskId() { return job ? job.taskId : null; }

function watch({ taskId, conflict: refused, started, focus, announced }) {
  if (job && job.timer) clearTimeout(job.timer);
  const same = job && job.taskId === taskId;
  job = {
    taskId, since: Date.now(), timer: null, stopped: false, lastCurrent: -1, pushed: false, done: false, live: false, polling: false,
    lastStatus: same ? job.lastStatus : null,
    // A job found running (on load, from the history): its earlier failures are not news.
    quietFirst: !started && !same,
    failedSeen: same ? job.failedSeen : new Set(), failedCount: same ? job.failedCount : 0,
  };
  if (!same) progress = null;
  conflict = refused || false;
  pollError = null;
  controlError = null;
  timedOut = false;
  if (started && !announced) announce(t('ann_started', started));
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
  // One poll in flight at a time: a timer set by a push may fire while a poll is out (the
  // page's timers can run ahead of the network), and two answers would each say "stopped".
  if (!w || w.done || w.polling || timedOut) return;
  w.timer = null;
  w.polling = true;
  let answer;
  try {
    answer = await callApi('GET', 'sync/batch/progress/' + encodeURIComponent(w.taskId));
  } finally {
    w.polling = false;
  }
  // Another job is watched now, this one ended, or watching stopped meanwhile.
  if (job !== w || w.done || timedOut) return;
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
    if (w.timer) clearTimeout(w.timer); // one a push set meanwhile
    w.timer = null;
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
  // A pause or resume changes neither the counts nor, within its 0.1 s, the elapsed time:
  // the status's own time says which picture came after it.
  if (p.updated_at && progress.updated_at && p.updated_at !== progress.updated_at) {
    return Date.parse(p.updated_at) > Date.parse(progress.updated_at);
  }
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
  statusChanged(w, p);
  if (ENDED.includes(p.status)) {
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
  if (!w.stopped && !timedOut && (!progress || ACTIVE.includes(progress.status))) {
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

/** Paused or resumed (here, in another tab, from the CLI): said once, whoever tells first.
 * Only a change between running and paused: an ended job running again was retried, which
 * its retry has said already. */
function statusChanged(w, p) {
  if (ACTIVE.includes(w.lastStatus) && w.lastStatus !== p.status && ACTIVE.includes(p.status)) {
    announce(t(p.status === 'paused' ? 'ann_paused' : 'ann_resumed'));
  }
  w.lastStatus = p.status;
}

/** What the job controls need: which job, its status, and whether it is still watched. */
function emitStatus() {
  emit('job-status', { taskId: job ? job.taskId : null, status: progress ? progress.status : null,
    watching: !!job && !timedOut && !job.stopped });
}

function render() {
  const notice = timedOut ? t('poll_timeout') : controlError ? t('control_failed', { message: controlError })
    : pollError ? t('poll_error', { message: pollError }) : '';
  renderView({ job, progress, conflict, timedOut, notice });
  emitStatus();
}

async function onCancel() {
  const w = job;
  if (!w || !window.confirm(t('cancel_confirm'))) return;
  const answer = await callApi('POST', 'sync/batch/cancel/' + encodeURIComponent(w.taskId));
  if (job !== w) return;
  if (answer.ok) {
    // The cancel's push may have ended the watch already (and said so): say it once.
    if (!w.done) {
      progress = answer.data;
      ended(answer.data);
    }
    // The cancel button is gone with the running job: the outcome takes the focus.
    $('summary').focus();
  } else {
    pollError = answer.message;
    render();
  }
}
