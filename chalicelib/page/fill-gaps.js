/* "Fill gaps": audit the span the calendar shows and start one job that syncs exactly its
 * faulty (day, dataset) pairs (POST audit/fill decides which). What happened is said in the
 * line beside the button and announced once; the new job is watched like any other.
 */
import { announce } from './announcer.js';
import { callApi } from './api.js';
import { emit } from './bus.js';
import { shownSpan } from './calendar.js';
import { $, setText } from './dom.js';
import { chosenDatasets } from './form.js';
import { fmtInt, t } from './i18n.js';

let filling = false;

export function init() {
  $('fill-gaps').addEventListener('click', fillGaps);
}

async function fillGaps() {
  if (filling) return;
  const button = $('fill-gaps');
  const span = shownSpan();
  const datasets = chosenDatasets();
  filling = true;
  button.setAttribute('aria-disabled', 'true');
  const answer = await callApi('POST', 'audit/fill', {
    body: { start: span.start, end: span.end, datasets: datasets.length ? datasets : ['daily'] },
  });
  filling = false;
  button.removeAttribute('aria-disabled');
  let said;
  if (answer.ok) {
    said = t('fill_started', {
      pairs: fmtInt(answer.data.pairs), days: fmtInt(answer.data.total_days), start: span.start, end: span.end,
    });
    // The fill's own line is what is said; the watch stays quiet about the start.
    emit('watch', {
      taskId: answer.data.task_id, announced: true,
      started: { start: span.start, end: span.end, total: answer.data.total_days },
    });
    emit('jobs-changed');
  } else if (answer.status === 409 && answer.code === 'nothing_to_fill') {
    said = t('fill_nothing', { start: span.start, end: span.end });
  } else if (answer.status === 409 && answer.data && answer.data.task_id) {
    // Another job holds the one-job slot: watch it, as the start form does.
    const paused = answer.data.status === 'paused';
    said = t(paused ? 'job_paused' : 'job_running');
    emit('watch', { taskId: answer.data.task_id, conflict: paused ? 'paused' : true });
  } else {
    said = answer.message;
  }
  setText($('fill-result'), said);
  announce(said);
}
