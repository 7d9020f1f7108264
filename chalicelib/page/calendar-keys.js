/* The calendar is one Tab stop (a roving tabindex over its day buttons) and moves like a
 * date picker: arrows by a day or a week, Home / End to the week's Monday / Sunday,
 * Page Up / Page Down by a month (with Shift, a year), Escape closes the day's details.
 * Enter and Space are the buttons' own.
 */
import { addDays, addMonthsKeepingDay, weekdayIndex } from './dates.js';

const MOVES = {
  ArrowLeft: (d) => addDays(d, -1),
  ArrowRight: (d) => addDays(d, 1),
  ArrowUp: (d) => addDays(d, -7),
  ArrowDown: (d) => addDays(d, 7),
  Home: (d) => addDays(d, -weekdayIndex(d)),
  End: (d) => addDays(d, 6 - weekdayIndex(d)),
  PageUp: (d, shift) => addMonthsKeepingDay(d, shift ? -12 : -1),
  PageDown: (d, shift) => addMonthsKeepingDay(d, shift ? 12 : 1),
};

/**
 * Handle the keys on `container`'s day buttons (`button.day[data-date]`):
 * `moveTo(date)` focuses a date, `onEscape()` closes what a day opened, and
 * `onFocusDate(date)` learns which date holds the Tab stop (a click moves it too).
 */
export function attachCalendarKeys(container, { moveTo, onEscape, onFocusDate }) {
  container.addEventListener('keydown', (event) => {
    const button = event.target.closest('button.day[data-date]');
    if (!button || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === 'Escape') {
      if (onEscape()) event.preventDefault();
      return;
    }
    const move = MOVES[event.key];
    if (!move) return;
    event.preventDefault();
    moveTo(move(button.dataset.date, event.shiftKey));
  });
  container.addEventListener('focusin', (event) => {
    const button = event.target.closest('button.day[data-date]');
    if (button) onFocusDate(button.dataset.date);
  });
}

/** Make `date`'s button the calendar's one Tab stop. */
export function setTabStop(container, date) {
  for (const button of container.querySelectorAll('button.day[tabindex="0"]')) {
    if (button.dataset.date !== date) button.tabIndex = -1;
  }
  const target = container.querySelector(`button.day[data-date="${date}"]`);
  if (target) target.tabIndex = 0;
  return target;
}
