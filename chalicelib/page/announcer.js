/* What a screen reader hears without moving: one polite live region, written to only when
 * something happens (a sync started, a day failed, a job ended, signed in), never on a poll.
 * The regions the page shows (the summary, the progress line) are not live: they would
 * speak on every redraw.
 */
import { $ } from './dom.js';

let timer = null;
const queue = [];

export function announce(text) {
  if (!text) return;
  queue.push(text);
  if (timer === null) timer = setTimeout(flush, 50);
}

// Messages that arrive together are spoken as one; the region is emptied first so the same
// words said twice are heard twice.
function flush() {
  timer = null;
  const region = $('announcer');
  const text = queue.splice(0).join(' ');
  region.textContent = '';
  requestAnimationFrame(() => { region.textContent = text; });
}
