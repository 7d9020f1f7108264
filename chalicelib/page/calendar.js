/* The calendar: every date of the selected range's months (or of the last six), coloured by
 * its state (GET dates), with the legend's counts and a summary line made from one count.
 *
 * The months are built once per window; each refresh (every step of a sync) updates the
 * day buttons in place, so the focused one keeps the focus. Keys: calendar-keys.js.
 */
import { callApi } from './api.js';
import { emit, on } from './bus.js';
import { attachCalendarKeys, setTabStop } from './calendar-keys.js';
import * as detail from './day-detail.js';
import {
  addDays, addMonths, daysBetween, monthEnd, monthStart, monthsBetween, setServerToday, today,
  weekdayIndex,
} from './dates.js';
import { $, h, keepingFocus, setAttr, setText, show } from './dom.js';
import { currentRange } from './form.js';
import { fmtInt, fmtRows, monthName, reasonText, t } from './i18n.js';

const RECENT_MONTHS = 6;
const MAX_WINDOW_DAYS = 400; // what the dates endpoint accepts
export const STATES = ['synced', 'not_synced', 'failed', 'skipped', 'non_trading', 'pending', 'running'];

const cal = {
  view: 'range', base: null, shift: 0, builtKey: null,
  byDate: new Map(), seq: 0, answered: false, tabStop: null,
};

export function init() {
  const container = $('calendar');
  $('view-range').addEventListener('click', () => setView('range'));
  $('view-recent').addEventListener('click', () => setView('recent'));
  $('cal-prev').addEventListener('click', () => page(-1));
  $('cal-next').addEventListener('click', () => page(1));
  container.addEventListener('click', (event) => {
    const button = event.target.closest('button.day[data-date]');
    if (button) selectDay(button.dataset.date);
  });
  attachCalendarKeys(container, {
    moveTo,
    onEscape: () => detail.close(),
    onFocusDate: (date) => { cal.tabStop = date; setTabStop(container, date); },
  });
  detail.init({ dayInfo: shownDay, dateLabel, onClose: focusDay, redraw: render });
  on('range', () => { if (cal.view === 'range') { rebase(); refresh(); } });
  on('job-progress', load);
  on('job-ended', load);
  on('auth', load);
  on('lang', render);
  rebase();
  render();
}

export function load() { return fetchWindow(); }

/** A date's entry while its month is shown (a day's details close with its month). */
function shownDay(date) {
  const win = windowNow();
  return date >= win.start && date <= win.end ? cal.byDate.get(date) : null;
}

function refresh() { render(); fetchWindow(); }

function setView(view) { cal.view = view; rebase(); refresh(); }

function page(step) {
  if (step > 0 && $('cal-next').getAttribute('aria-disabled') === 'true') return;
  cal.shift += step;
  refresh();
}

function lastMonths(last) {
  return { start: addMonths(monthStart(last), -(RECENT_MONTHS - 1)), end: monthEnd(last) };
}

/** Choose the months to show afresh: the selected range's months; a range too long for
 * that keeps the months in view if they show part of it (no jump), else its last months. */
function rebase() {
  const visible = cal.base ? windowNow() : null;
  cal.shift = 0;
  if (cal.view === 'recent') { cal.base = lastMonths(today()); return; }
  const range = currentRange();
  if (!range) { cal.base = visible || lastMonths(today()); return; }
  if (daysBetween(monthStart(range.start), monthEnd(range.end)) < MAX_WINDOW_DAYS) {
    cal.base = { start: monthStart(range.start), end: monthEnd(range.end) };
  } else if (visible && visible.start <= range.end && visible.end >= range.start) {
    cal.base = { start: visible.start, end: visible.end };
  } else {
    cal.base = lastMonths(range.end);
  }
}

/** The months shown (the base moved by the pager), and the form's range. */
function windowNow() {
  return {
    start: addMonths(cal.base.start, cal.shift),
    end: monthEnd(addMonths(cal.base.end, cal.shift)),
    range: cal.view === 'range' ? currentRange() : null,
  };
}

async function fetchWindow() {
  const win = windowNow();
  const seq = ++cal.seq;
  const answer = await callApi('GET', 'dates', { params: { start: win.start, end: win.end } });
  if (seq !== cal.seq) return; // a newer request was made meanwhile
  const box = $('calendar-error');
  setText(box, answer.ok ? '' : answer.message);
  show(box, !answer.ok);
  if (!answer.ok) return;
  const first = !cal.answered;
  cal.answered = true;
  for (const day of answer.data.dates) cal.byDate.set(day.date, day);
  setServerToday(answer.data.today);
  emit('server-info', { today: answer.data.today, maxDays: answer.data.max_range_days, first });
  render();
}

function moveTo(date) {
  const win = windowNow();
  if (date < win.start) cal.shift -= monthsBetween(date, win.start);
  if (date > win.end) {
    if (monthStart(win.end) >= monthStart(today())) return; // nothing later to show
    cal.shift += monthsBetween(win.end, date);
  }
  cal.tabStop = date;
  if (date < win.start || date > win.end) refresh();
  focusDay(date);
}

function focusDay(date) {
  const button = setTabStop($('calendar'), date);
  if (button) button.focus();
}

function selectDay(date) {
  cal.tabStop = date;
  detail.toggle(date);
}

function render() {
  const win = windowNow();
  const container = $('calendar');
  setAttr($('view-range'), 'aria-pressed', cal.view === 'range');
  setAttr($('view-recent'), 'aria-pressed', cal.view === 'recent');
  setText($('view-recent'), t('view_recent', { n: RECENT_MONTHS }));
  setAttr($('cal-next'), 'aria-disabled', monthStart(win.end) >= monthStart(today()) ? 'true' : null);
  const key = win.start + '|' + win.end;
  if (key !== cal.builtKey) {
    cal.builtKey = key;
    keepingFocus(container, () => container.replaceChildren(...months(win)));
  }
  const range = win.range && win.range.valid && cal.view === 'range' ? win.range : null;
  container.classList.toggle('has-range', !!range);
  if (!cal.tabStop || cal.tabStop < win.start || cal.tabStop > win.end) cal.tabStop = defaultTabStop(win, range);
  for (const fig of container.children) patchMonth(fig);
  for (const button of container.querySelectorAll('button.day')) patchDay(button, range);
  setTabStop(container, cal.tabStop);
  renderCounts(win, range);
  detail.render();
}

function defaultTabStop(win, range) {
  const inWindow = (d) => d && d >= win.start && d <= win.end;
  const selected = detail.selected();
  if (inWindow(selected)) return selected;
  if (range && inWindow(range.start)) return range.start;
  return inWindow(today()) ? today() : win.start;
}

function months(win) {
  const figures = [];
  for (let first = win.start; first <= win.end; first = addMonths(first, 1)) {
    const id = 'month-' + first.slice(0, 7);
    const cells = [];
    for (let i = 0; i < weekdayIndex(first); i++) cells.push(h('td'));
    for (let day = first; day <= monthEnd(first); day = addDays(day, 1)) {
      cells.push(h('td', null, h('button', {
        type: 'button', class: 'day', tabindex: -1, 'data-date': day, 'data-focus-key': 'day:' + day,
      }, h('span', { class: 'num', 'aria-hidden': 'true', text: +day.slice(8) }),
      h('span', { class: 'mark', 'aria-hidden': 'true' }))));
    }
    while (cells.length % 7) cells.push(h('td'));
    const rows = [];
    for (let i = 0; i < cells.length; i += 7) rows.push(h('tr', null, cells.slice(i, i + 7)));
    figures.push(h('figure', { class: 'month', 'data-month': first },
      h('figcaption', { id }),
      h('table', { class: 'month-grid', role: 'grid', 'aria-labelledby': id, 'aria-describedby': 'calendar-keys' },
        h('thead', null, h('tr', null, [0, 1, 2, 3, 4, 5, 6].map((i) => h('th', { scope: 'col', class: i >= 5 ? 'weekend' : null })))),
        h('tbody', null, rows))));
  }
  return figures;
}

function patchMonth(figure) {
  const first = figure.dataset.month;
  setText(figure.querySelector('figcaption'), monthTitle(first));
  figure.querySelectorAll('th').forEach((th, i) => {
    setText(th, t('weekdays')[i]);
    setAttr(th, 'abbr', t('weekdays_long')[i]);
  });
}

export function monthTitle(first) {
  return t('month_title', { year: first.slice(0, 4), month: +first.slice(5, 7), monthName: monthName(first) });
}

function markOf(day) {
  if (!day) return '';
  if (day.state === 'synced' && day.rows !== null && day.rows !== undefined) return fmtRows(day.rows);
  return { failed: '!', skipped: '–', running: '…' }[day.state] || '';
}

function patchDay(button, range) {
  const date = button.dataset.date;
  const day = cal.byDate.get(date);
  const now = today();
  const classes = ['day', day ? 's-' + day.state : 's-loading'];
  if (date > now && (!day || day.state === 'not_synced')) classes.push('future');
  if (range && date >= range.start && date <= range.end) classes.push('in-range');
  if (range && date === range.start) classes.push('range-start');
  if (range && date === range.end) classes.push('range-end');
  if (date === now) classes.push('today');
  if (day && day.short) classes.push('short');
  if (detail.selected() === date) classes.push('selected');
  const cls = classes.join(' ');
  if (button.className !== cls) button.className = cls;
  const label = dateLabel(date, day);
  setAttr(button, 'aria-label', label);
  setAttr(button, 'title', label);
  setAttr(button, 'data-state', day ? day.state : 'loading');
  setAttr(button, 'aria-pressed', detail.selected() === date ? 'true' : 'false');
  setText(button.lastChild, markOf(day));
}

/** A date as its button says it: the visible number and mark, then what explains it. */
export function dateLabel(date, day) {
  const future = date > today();
  const parts = [t('day_name', {
    year: date.slice(0, 4), month: +date.slice(5, 7), monthName: monthName(date), day: +date.slice(8),
    weekday: t('weekdays_long')[weekdayIndex(date)],
  })];
  if (!day) return parts.concat(t('state_loading')).join(' · ');
  parts.push(future && day.state === 'not_synced' ? t('state_future') : t('state_' + day.state));
  if (day.rows !== null && day.rows !== undefined) parts.push(t('tip_rows', { rows: day.state === 'synced' ? fmtRows(day.rows) : fmtInt(day.rows) }));
  if (day.skip_reason && !(day.state === 'non_trading' && day.skip_reason === 'non_trading_day')) {
    parts.push(t('tip_reason', { reason: reasonText(day.skip_reason) }));
  }
  if (day.short) parts.push(t('tip_short', { datasets: shortDatasets(day).join(', ') }));
  if (day.error) parts.push(t('tip_error', { error: day.error }));
  if (day.state === 'not_synced' && !future) {
    if (day.trading === true) parts.push(t('tip_trading'));
    if (day.trading === null) parts.push(t('tip_calendar_unknown'));
  }
  return parts.join(' · ');
}

/** The datasets of a date whose rows fall short of the listings' count. */
export function shortDatasets(day) {
  return Object.entries(day.datasets || {}).filter(([, d]) => d.state === 'short').map(([name]) => name);
}

/** The span shown: the form's range in range view, else the months shown; never past today. */
export function shownSpan() {
  const win = windowNow();
  const span = win.range && win.range.valid && cal.view === 'range' ? win.range : win;
  return { start: span.start, end: span.end < today() ? span.end : today() };
}

/** One count per state over one span (the range, else the months shown, up to today):
 * the legend shows it and the line under it says it, so the two cannot disagree. */
function renderCounts(win, range) {
  const span = range || win;
  const end = span.end < today() ? span.end : today();
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  let rows = 0;
  let days = 0;
  for (let d = span.start; d <= end; d = addDays(d, 1)) {
    const day = cal.byDate.get(d);
    if (!day) continue;
    days++;
    counts[day.state] = (counts[day.state] || 0) + 1;
    if (day.state === 'synced') rows += day.rows || 0;
  }
  const legend = $('legend');
  setAttr(legend, 'aria-label', t('legend', { span: t(range ? 'legend_range' : 'legend_window') }));
  legend.replaceChildren(...STATES.map((s) => h('li', { class: 'legend-item', 'data-state': s },
    h('span', { class: 'swatch s-' + s, 'aria-hidden': 'true' }),
    h('span', { class: 'label', text: t('state_' + s) }),
    cal.answered ? h('span', { class: 'count', text: fmtInt(counts[s]) }) : null)));
  const line = $('calendar-summary');
  if (!cal.answered || end < span.start) { setText(line, t('calendar_hint')); return; }
  const said = STATES.filter((s) => ['synced', 'not_synced', 'failed'].includes(s) || counts[s] > 0)
    .map((s) => t(s === 'synced' ? 'summary_synced' : 'summary_count',
      { label: t('state_' + s), n: fmtInt(counts[s]), rows: fmtInt(rows) }));
  let short = 0;
  for (let d = span.start; d <= end; d = addDays(d, 1)) if ((cal.byDate.get(d) || {}).short) short++;
  if (short) said.push(t('summary_short', { n: fmtInt(short) }));
  setText(line, t('calendar_summary', { start: span.start, end, days, counts: said.join(t('summary_sep')) })
    + ' ' + t('calendar_hint'));
}
