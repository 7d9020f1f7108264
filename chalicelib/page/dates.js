/* Dates as ISO strings (YYYY-MM-DD), computed in UTC so no time zone shifts them.
 * "Today" is Beijing's date (A-share trading dates are), the API's once it has answered.
 */

let serverToday = null;

export function parseIso(iso) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || '');
  if (!m) return null;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
  return d.getUTCMonth() === +m[2] - 1 && d.getUTCDate() === +m[3] ? d : null;
}

export function iso(d) { return d.toISOString().slice(0, 10); }

export function addDays(isoDate, n) {
  const d = parseIso(isoDate);
  d.setUTCDate(d.getUTCDate() + n);
  return iso(d);
}

export function daysBetween(a, b) { return Math.round((parseIso(b) - parseIso(a)) / 86400000); }
export function monthStart(isoDate) { return isoDate.slice(0, 8) + '01'; }

export function addMonths(isoDate, n) {
  const d = parseIso(monthStart(isoDate));
  d.setUTCMonth(d.getUTCMonth() + n);
  return iso(d);
}

export function monthEnd(isoDate) { return addDays(addMonths(isoDate, 1), -1); }
export function monthsBetween(a, b) {
  return (+b.slice(0, 4) - +a.slice(0, 4)) * 12 + (+b.slice(5, 7) - +a.slice(5, 7));
}

/** The same day of the month `n` months on, or that month's last day if it is shorter. */
export function addMonthsKeepingDay(isoDate, n) {
  const first = addMonths(isoDate, n);
  const day = Math.min(+isoDate.slice(8), +monthEnd(first).slice(8));
  return first.slice(0, 8) + String(day).padStart(2, '0');
}

export function weekdayIndex(isoDate) { return (parseIso(isoDate).getUTCDay() + 6) % 7; } // Monday 0

export function beijingToday() {
  const parts = {};
  for (const p of new Intl.DateTimeFormat('en-US', {
    timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit',
  }).formatToParts(new Date())) parts[p.type] = p.value;
  return `${parts.year}-${parts.month}-${parts.day}`;
}

export function today() { return serverToday || beijingToday(); }
export function setServerToday(value) { if (parseIso(value)) serverToday = value; }
