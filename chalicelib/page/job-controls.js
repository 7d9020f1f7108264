/* Pause and resume the watched job, and retry an ended job's failed days from the history.
 *
 * The pause and resume buttons sit with the progress's own (cancel): one shows while the
 * job runs, the other while it is paused, and the focus moves from the one pressed to the
 * one that takes its place. What they did is announced once (by progress.js, which hears
 * it from the answer or from its push, whichever comes first). Retry is one more action on
 * a job's row in the history (history.js's addRowAction), for an ended job with failed days;
 * the retried job is then watched, and the focus goes where its progress is.
 */
import { announce } from './announcer.js';
import { callApi } from './api.js';
import { emit, on } from './bus.js';
import { $, show } from './dom.js';
import { addRowAction, showNotice } from './history.js';
import { t } from './i18n.js';

const ENDED = ['completed', 'cancelled'];
let state = { taskId: null, status: null, watching: false };
let busy = false;

export function init() {
  $('pause-button').addEventListener('click', () => control('pause'));
  $('resume-job-button').addEventListener('click', () => control('resume'));
  on('job-status', (next) => { state = next; render(); });
  on('lang', render);
  addRowAction({
    key: 'retry',
    label: () => t('retry_job'),
    visible: (job) => ENDED.includes(job.status) && job.failed > 0,
    run: retry,
  }, 'days');
  render();
}

function render() {
  const watching = state.watching && !!state.taskId;
  show($('pause-button'), watching && state.status === 'running');
  show($('resume-job-button'), watching && state.status === 'paused');
}

async function control(action) {
  const taskId = state.taskId;
  const button = $(action === 'pause' ? 'pause-button' : 'resume-job-button');
  if (!taskId || busy) return;
  // aria-disabled, not disabled: a disabled button would drop the keyboard focus.
  busy = true;
  button.setAttribute('aria-disabled', 'true');
  const hadFocus = document.activeElement === button;
  const answer = await callApi('POST', `sync/batch/${action}/` + encodeURIComponent(taskId));
  busy = false;
  button.removeAttribute('aria-disabled');
  if (!answer.ok) {
    emit('job-error', { message: answer.message });
    announce(answer.message);
    return;
  }
  // progress.js shows it and says it (once, should its push have come first).
  emit('job-updated', { progress: answer.data });
  emit('jobs-changed');
  // The button pressed is gone (perhaps already, with the push); its partner takes its place
  // and the focus.
  const partner = $(answer.data.status === 'paused' ? 'resume-job-button' : 'pause-button');
  const lost = !document.activeElement || document.activeElement === document.body;
  if (hadFocus && (lost || document.activeElement === button) && !partner.hidden) partner.focus();
}

async function retry(job, button) {
  if (button.getAttribute('aria-disabled') === 'true') return;
  button.setAttribute('aria-disabled', 'true');
  const answer = await callApi('POST', 'sync/batch/retry/' + encodeURIComponent(job.task_id));
  button.removeAttribute('aria-disabled');
  if (!answer.ok) {
    showNotice(answer.message);
    announce(answer.message);
    return;
  }
  showNotice('');
  announce(t('ann_retried', { n: answer.data.retry_days, start: job.start_date, end: job.end_date }));
  emit('watch', { taskId: job.task_id, focus: true, announced: true });
  emit('jobs-changed');
}
