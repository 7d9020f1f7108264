/* The job history (GET jobs): one row per job, its actions, and each job's days on demand.
 * Rows and their buttons are reconciled by key, so a redraw never takes the focus away.
 * A new action is one entry passed to addRowAction() (job-controls.js adds "retry").
 * A job's days open with its history (its events: created, paused, retried...).
 */
import { callApi } from './api.js';
import { emit, on } from './bus.js';
import { $, h, reconcile, setAttr, setText, show, watchOverflow } from './dom.js';
import { fmtDuration, fmtInt, fmtTime, reasonText, t } from './i18n.js';

const ACTIVE = ['running', 'paused'];
let jobs = null;
let watched = null;
const openJobs = new Map(); // task_id -> its days (null while loading, {error} on failure)
let updateScrollCue = () => {};

/** An action on a job's row: `label(job)`, `visible(job)`, `run(job, button)`, and
 * optionally `expanded(job)` (for a button that shows or hides something). */
const ROW_ACTIONS = [
  {
    key: 'watch',
    label: () => t('watch_job'),
    visible: (job) => ACTIVE.includes(job.status) && watched !== job.task_id,
    run: (job) => emit('watch', { taskId: job.task_id, focus: true }),
  },
  {
    key: 'days',
    label: (job) => t(openJobs.has(job.task_id) ? 'hide_days' : 'show_days'),
    visible: () => true,
    expanded: (job) => openJobs.has(job.task_id),
    controls: (job) => 'days-' + job.task_id,
    run: (job) => toggleDays(job.task_id),
  },
];

export function addRowAction(action, before = null) {
  const at = ROW_ACTIONS.findIndex((a) => a.key === before);
  ROW_ACTIONS.splice(at < 0 ? ROW_ACTIONS.length : at, 0, action);
}

export function init() {
  $('history-refresh').addEventListener('click', load);
  updateScrollCue = watchOverflow($('history-wrap'), $('history-cue'),
    () => ({ plain: t('history_region'), scrolling: t('history_scrolling') }));
  on('watch', ({ taskId }) => { watched = taskId; render(); });
  on('jobs-changed', load);
  on('auth', load);
  on('lang', render);
}

/** Say something about the history (an action refused), or nothing (''). */
export function showNotice(text) {
  const box = $('history-error');
  setText(box, text);
  show(box, !!text);
}

export async function load() {
  const answer = await callApi('GET', 'sync/batch/jobs');
  const box = $('history-error');
  setText(box, answer.ok ? '' : answer.message);
  show(box, !answer.ok);
  if (!answer.ok) return null;
  jobs = answer.data;
  render();
  return jobs;
}

async function toggleDays(taskId) {
  if (openJobs.has(taskId)) {
    openJobs.delete(taskId);
    render();
    return;
  }
  openJobs.set(taskId, null);
  render();
  const answer = await callApi('GET', 'sync/batch/days/' + encodeURIComponent(taskId));
  if (!openJobs.has(taskId)) return;
  openJobs.set(taskId, answer.ok ? answer.data : { error: answer.message });
  render();
}

function render() {
  show($('history-empty'), !!jobs && jobs.length === 0);
  if (!jobs) return;
  const rows = [];
  for (const job of jobs) {
    rows.push({ kind: 'job', job });
    if (openJobs.has(job.task_id)) rows.push({ kind: 'days', job });
  }
  reconcile($('history-body'), rows, {
    key: (row) => row.kind + ':' + row.job.task_id,
    create: (row) => (row.kind === 'job' ? createJobRow(row.job) : h('tr', { class: 'days-row', id: 'days-' + row.job.task_id }, h('td', { colspan: 7 }))),
    update: (el, row) => (row.kind === 'job' ? updateJobRow(el, row.job) : updateDaysRow(el, row.job)),
  });
  updateScrollCue();
}

const range = (job) => `${job.start_date} → ${job.end_date}`;

function createJobRow(job) {
  return h('tr', { class: 'job-row', 'data-task-id': job.task_id },
    h('td', null, h('span', { class: 'range', text: range(job) }), h('span', { class: 'tag' }),
      h('div', { class: 'task muted', text: job.task_id })),
    h('td', null, h('span', { class: 'badge' })),
    h('td', { class: 'outcome' }, h('span', { class: 'n-ok' }), ' · ', h('span'), ' · ', h('span', { class: 'n-skip' })),
    h('td', { class: 'num rows' }), h('td', { class: 'created' }), h('td', { class: 'num duration' }),
    h('td', { class: 'row-actions' }));
}

function updateJobRow(tr, job) {
  const [first, status, outcome, rows, created, duration, actions] = tr.children;
  const tag = first.querySelector('.tag');
  setText(tag, job.force ? t('forced') : '');
  show(tag, !!job.force);
  const badge = status.firstChild;
  const failedDone = job.status === 'completed' && job.failed > 0;
  setText(badge, t(failedDone ? 'status_completed_failures' : 'status_' + job.status) || job.status);
  badge.className = 'badge ' + (failedDone ? 'warn' : { running: 'running', paused: 'paused', completed: 'ok' }[job.status] || 'muted');
  const [ok, bad, skip] = outcome.querySelectorAll('span');
  setText(ok, `${t('stat_success')} ${job.success}`);
  setText(bad, `${t('stat_failed')} ${job.failed}`);
  bad.className = job.failed ? 'n-bad' : '';
  setText(skip, `${t('stat_skipped')} ${job.skipped}`);
  setText(rows, fmtInt(job.rows));
  setText(created, fmtTime(job.created_at));
  setText(duration, job.finished_at
    ? fmtDuration((new Date(job.finished_at) - new Date(job.created_at)) / 1000) : t('in_progress'));
  reconcile(actions, ROW_ACTIONS.filter((a) => a.visible(job)), {
    key: (a) => a.key,
    create: (a) => h('button', {
      type: 'button', class: 'ghost small', 'data-focus-key': a.key + ':' + job.task_id,
      onclick: (event) => a.run(jobs.find((j) => j.task_id === job.task_id) || job, event.currentTarget),
    }),
    update: (button, a) => {
      setText(button, a.label(job));
      // The name starts with what the button shows, then says which job it acts on.
      setAttr(button, 'aria-label', t('row_action_label', { action: a.label(job), range: range(job) }));
      if (a.expanded) setAttr(button, 'aria-expanded', String(a.expanded(job)));
      if (a.controls) setAttr(button, 'aria-controls', a.controls(job));
    },
  });
}

function updateDaysRow(tr, job) {
  const days = openJobs.get(job.task_id);
  const cell = tr.firstChild;
  const shown = JSON.stringify([days, job.events, t('days_date')]);
  if (cell.dataset.shown === shown) return;
  cell.dataset.shown = shown;
  cell.replaceChildren(daysTable(days, job), eventsList(job));
}

/** The job's history: created, paused, resumed, cancelled, retried, completed; who, when. */
function eventsList(job) {
  const events = job.events || [];
  if (!events.length) return '';
  return h('div', { class: 'events' },
    h('h3', { class: 'events-title', text: t('events_caption') }),
    h('ol', null, events.map((e) => h('li', null,
      h('span', { class: 'muted', text: fmtTime(e.at) }), ' ',
      t('ev_' + e.kind) || e.kind, ' · ', e.actor || t('ev_system'),
      e.detail && e.detail.days ? ' · ' + t('ev_days', { n: e.detail.days }) : ''))));
}

function daysTable(days, job) {
  if (days === null) return h('p', { class: 'muted', text: t('days_loading') });
  if (days.error) return h('p', { class: 'notice error', text: days.error });
  return h('table', { class: 'days' },
    h('caption', { class: 'sr-only', text: t('days_caption', { range: range(job) }) }),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col', text: t('days_date') }), h('th', { scope: 'col', text: t('days_status') }),
      h('th', { scope: 'col', text: t('days_detail') }), h('th', { scope: 'col', class: 'num', text: t('days_attempts') }),
      h('th', { scope: 'col', class: 'num', text: t('days_rows') }))),
    h('tbody', null, days.map((d) => h('tr', { class: 'd-' + d.status },
      h('td', { text: d.day }),
      h('td', null, h('span', { class: 'dot s-' + dayState(d), 'aria-hidden': 'true' }), ' ', t('day_' + d.status) || d.status),
      h('td', { class: 'detail', text: [d.skip_reason ? reasonText(d.skip_reason) : '', d.error || '',
        d.past_errors && d.past_errors.length ? t('days_earlier', { errors: d.past_errors.join(' | ') }) : '']
        .filter(Boolean).join(' · ') }),
      h('td', { class: 'num', text: d.attempts }),
      h('td', { class: 'num', text: d.rows_written ? fmtInt(d.rows_written) : '—' })))));
}

function dayState(d) {
  if (d.status === 'success') return 'synced';
  if (d.status === 'skipped' && d.skip_reason === 'non_trading_day') return 'non_trading';
  return d.status;
}
