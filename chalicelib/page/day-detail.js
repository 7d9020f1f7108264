/* A calendar day's details, opened by activating the day: what the calendar knows of it
 * (state, rows, reason or error, its latest job, when it was synced), and buttons to use
 * it as the form's start or end date. On a phone it is scrolled into view when opened.
 */
import { announce } from './announcer.js';
import { emit } from './bus.js';
import { $, h, keepingFocus, revealIfHidden, show } from './dom.js';
import { fmtInt, fmtTime, reasonText, t } from './i18n.js';

let selectedDate = null;
let shownKey = null;
let hooks = null;

/** `dayInfo(date)` the dates answer's entry, `dateLabel(date, info)` its words, `redraw()`
 * the calendar, `onClose(date)` where the focus goes when the details close. */
export function init(options) { hooks = options; }

export function selected() { return selectedDate; }

export function toggle(date) {
  selectedDate = selectedDate === date ? null : date;
  hooks.redraw();
  if (!selectedDate) return;
  const box = $('day-detail');
  if (!box.hidden) {
    revealIfHidden(box);
    announce(box.querySelector('.detail-text').textContent);
  }
}

/** Close the details; false if none were open. */
export function close() {
  if (!selectedDate) return false;
  const date = selectedDate;
  selectedDate = null;
  hooks.redraw();
  hooks.onClose(date);
  return true;
}

function text(day) {
  return hooks.dateLabel(day.date, day)
    + (day.task_id ? ' · ' + t('tip_task', { task: day.task_id }) : '')
    + (day.synced_at ? ' · ' + t('tip_synced_at', { time: fmtTime(day.synced_at) }) : '');
}

/** Each dataset's state on the date: synced (rows), short (rows of the expected), failed, skipped. */
function datasetLines(day) {
  return Object.entries(day.datasets || {}).map(([name, d]) => {
    const counts = d.expected !== null && d.expected !== undefined && d.rows !== null && d.rows !== undefined
      ? t('ds_counts', { rows: fmtInt(d.rows), expected: fmtInt(d.expected) })
      : (d.rows ? t('tip_rows', { rows: fmtInt(d.rows) }) : '');
    const why = d.skip_reason ? reasonText(d.skip_reason) : (d.state === 'failed' && d.error ? d.error : '');
    return [name + ': ' + t('ds_state_' + d.state), counts, why].filter(Boolean).join(' · ');
  });
}

export function render() {
  const box = $('day-detail');
  const day = selectedDate && hooks.dayInfo(selectedDate);
  if (!day) { show(box, false); shownKey = null; return; }
  const words = text(day);
  const lines = datasetLines(day);
  const key = day.state + '|' + words + '|' + lines.join('|') + '|' + t('set_start');
  if (key !== shownKey) {
    shownKey = key;
    const use = (field) => () => emit('use-date', { field, date: day.date });
    keepingFocus(box, () => box.replaceChildren(
      h('span', { class: 'swatch s-' + day.state, 'aria-hidden': 'true' }),
      h('span', { class: 'detail-text', text: words }),
      lines.length ? h('ul', { class: 'detail-datasets', 'aria-label': t('datasets_label') },
        lines.map((line) => h('li', { text: line }))) : null,
      h('span', { class: 'detail-actions' },
        h('button', { type: 'button', class: 'ghost small', 'data-focus-key': 'set-start', onclick: use('start'), text: t('set_start') }),
        h('button', { type: 'button', class: 'ghost small', 'data-focus-key': 'set-end', onclick: use('end'), text: t('set_end') }),
        h('button', {
          type: 'button', class: 'ghost small icon-close', 'data-focus-key': 'close',
          'aria-label': t('detail_close'), title: t('detail_close'), onclick: close, text: '×',
        }))));
  }
  box.setAttribute('aria-label', t('detail_label'));
  show(box, true);
}
