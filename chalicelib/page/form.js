/* The range form: two dates and "force", checked with the API's rules in the API's order
 * before anything is sent, then the start request. What the API refuses is shown as it
 * says it, in the form's words.
 */
import { callApi } from './api.js';
import { emit, on } from './bus.js';
import { addDays, beijingToday, daysBetween, parseIso, today } from './dates.js';
import { $, setAttr, setText, show } from './dom.js';
import { inFormWords, t } from './i18n.js';

const DEFAULT_RANGE_DAYS = 7;
let maxDays = 90; // until the API tells its own limit
let error = null; // {key, params, field} (checked here) or {text, kind} (from the API)
let busy = false;

export function init() {
  const end = beijingToday();
  $('start-date').value = addDays(end, -(DEFAULT_RANGE_DAYS - 1));
  $('end-date').value = end;
  $('start-date').max = end;
  $('end-date').max = end;
  $('sync-form').addEventListener('submit', onSubmit);
  for (const id of ['start-date', 'end-date']) $(id).addEventListener('change', onRangeInput);
  $('datasets').addEventListener('change', () => { if (error && (error.field === 'ds-daily' || error.key === 'v_datasets')) setError(validate(values())); });
  on('server-info', (info) => {
    const first = info.first;
    if (info.maxDays) maxDays = info.maxDays;
    renderHint();
    if (first && error && error.field) setError(validate(values()));
  });
  on('use-date', ({ field, date }) => {
    const [mine, other] = field === 'start' ? ['start-date', 'end-date'] : ['end-date', 'start-date'];
    $(mine).value = date;
    // Keep the range the right way round: the other end follows when it would be crossed.
    if ($(other).value && (field === 'start' ? $(other).value < date : $(other).value > date)) $(other).value = date;
    onRangeInput();
  });
  on('lang', () => {
    // The API's own messages are in the language they were asked in: drop them.
    if (error && error.text) error = null;
    render();
  });
  render();
}

function values() {
  return { start: $('start-date').value, end: $('end-date').value, force: $('force').checked, datasets: chosenDatasets() };
}

/** The datasets ticked in the form, in the API's order (daily, adj_factor, daily_basic, suspend_d). */
export function chosenDatasets() {
  return [...document.querySelectorAll('#datasets input[name="dataset"]')].filter((box) => box.checked).map((box) => box.value);
}

/** The range the form holds, in order, for the calendar to keep in view (null: none). */
export function currentRange() {
  const v = values();
  const start = parseIso(v.start) ? v.start : null;
  const end = parseIso(v.end) ? v.end : null;
  if (!start && !end) return null;
  const [a, b] = [start || end, end || start].sort();
  return { start: a, end: b, valid: !!(start && end && start <= end) };
}

function checkDate(value, labelKey, id) {
  const field = t(labelKey);
  if (!value) return { key: 'v_missing', params: { field }, field: id };
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return { key: 'v_format', params: { field, value }, field: id };
  if (!parseIso(value)) return { key: 'v_invalid', params: { field, value }, field: id };
  return null;
}

/** The API's rules, in its order; null when the range is fine. */
function validate(v) {
  const labels = { start_label: t('start_label'), end_label: t('end_label') };
  const bad = checkDate(v.start, 'start_label', 'start-date') || checkDate(v.end, 'end_label', 'end-date');
  if (bad) return bad;
  if (v.start > v.end) return { key: 'v_reversed', params: { ...labels, start: v.start, end: v.end }, field: 'start-date' };
  const span = daysBetween(v.start, v.end) + 1;
  if (span > maxDays) return { key: 'v_too_long', params: { max: maxDays, span }, field: 'end-date' };
  if (v.end > today()) return { key: 'v_future', params: { ...labels, end: v.end, today: today() }, field: 'end-date' };
  if (!v.datasets.length) return { key: 'v_datasets', params: {}, field: 'ds-daily' };
  return null;
}

function setError(next) { error = next; renderError(); }

function render() { renderHint(); renderError(); }

function renderHint() { setText($('form-hint'), t('hint', { max: maxDays, today: today() })); }

function renderError() {
  const box = $('form-error');
  for (const id of ['start-date', 'end-date', 'ds-daily']) setAttr($(id), 'aria-invalid', null);
  if (!error) { show(box, false); setText(box, ''); return; }
  // A checked error is worded afresh (labels follow the language).
  const text = error.text || t(error.key, refreshLabels(error));
  setText(box, text);
  box.className = 'notice ' + (error.kind === 'warn' ? 'warn' : 'error');
  if (error.field) setAttr($(error.field), 'aria-invalid', 'true');
  show(box, true);
}

function refreshLabels(e) {
  const params = { ...e.params, start_label: t('start_label'), end_label: t('end_label') };
  if ('field' in e.params) params.field = t(e.field === 'start-date' ? 'start_label' : 'end_label');
  return params;
}

function onRangeInput() {
  setError(validate(values()));
  emit('range', currentRange());
}

async function onSubmit(event) {
  event.preventDefault();
  if (busy) return;
  const v = values();
  const bad = validate(v);
  if (bad) {
    setError(bad);
    $(bad.field).focus();
    return;
  }
  // aria-disabled, not disabled: a disabled button would drop the keyboard focus.
  const button = $('start-button');
  busy = true;
  button.setAttribute('aria-disabled', 'true');
  setText(button, t('starting'));
  const body = { start_date: v.start, end_date: v.end };
  if (v.force) body.force = true;
  // Daily alone is the seed's request: sent as it always was.
  if (v.datasets.join(',') !== 'daily') body.datasets = v.datasets;
  const answer = await callApi('POST', 'sync/batch', { body });
  busy = false;
  button.removeAttribute('aria-disabled');
  setText(button, t('start_button'));
  if (answer.ok) {
    setError(null);
    emit('watch', { taskId: answer.data.task_id, started: { start: v.start, end: v.end, total: answer.data.total_days } });
    emit('jobs-changed');
  } else if (answer.status === 409 && answer.data && answer.data.task_id) {
    // The seed's words for it (or their paused variant), in the page's language (they
    // follow a language switch).
    const paused = answer.data.status === 'paused';
    setError({ key: paused ? 'job_paused' : 'job_running', params: {}, kind: 'warn' });
    emit('watch', { taskId: answer.data.task_id, conflict: paused ? 'paused' : true });
    emit('jobs-changed');
  } else {
    setError({ text: inFormWords(answer.message) });
  }
}
