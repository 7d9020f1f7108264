/* stocksync's sync page: start a batch sync, watch it, see every date's state.
 *
 * Plain ES modules, no build step, one per purpose:
 *   api.js        the API client (where it is, the bearer token, one answer shape)
 *   auth.js       signing in: the #token= hand-over, sessionStorage, whoami, sign in/out
 *   i18n.js       the language, formatting; messages-zh.js, messages-en.js: the words
 *   announcer.js  the live region: state changes, not polls
 *   form.js       the range form and its checks
 *   progress.js   the watched job (progress-view.js draws it; skips.js: why it skipped
 *                 days, and the force option)
 *   calendar.js   the calendar (calendar-keys.js: its keys; day-detail.js: a day's details;
 *                 fill-gaps.js: audit the dates shown and fill their gaps)
 *   history.js    the job history
 *   job-controls.js  pause / resume the watched job, retry an ended job's failed days
 *   live.js       pushed progress over the WebSocket API (polling is the fallback)
 *   dom.js, dates.js, bus.js: helpers, ISO dates, the events the parts talk by
 * A new control is a module with an init() listed in PARTS, listening on bus.js's events.
 */
import * as api from './api.js';
import * as auth from './auth.js';
import { emit, on } from './bus.js';
import * as calendar from './calendar.js';
import { $, setText, show } from './dom.js';
import * as fillGaps from './fill-gaps.js';
import * as form from './form.js';
import * as history from './history.js';
import { applyStaticText, currentLang, initLang, setLang, t } from './i18n.js';
import * as jobControls from './job-controls.js';
import * as live from './live.js';
import * as progress from './progress.js';

// The token must leave the address bar before anything else can see or copy it.
auth.takeTokenFromAddress();

const PARTS = [auth, form, progress, calendar, fillGaps, history, jobControls, live];

function renderChrome() {
  const toggle = $('lang-toggle');
  setText(toggle, t('lang_button'));
  toggle.setAttribute('aria-label', t('lang_button_label'));
  toggle.lang = currentLang() === 'en' ? 'zh-CN' : 'en';
  setText($('api-base'), t('api_label', { base: api.apiRoot() }));
  const refused = api.refusedApiOrigin();
  setText($('page-notice'), refused ? t('api_refused', { origin: refused }) : '');
  show($('page-notice'), !!refused);
}

async function main() {
  initLang();
  api.initApiBase();
  applyStaticText();
  renderChrome();
  on('lang', renderChrome);
  $('lang-toggle').addEventListener('click', () => setLang(currentLang() === 'en' ? 'zh' : 'en'));
  for (const part of PARTS) part.init();

  auth.checkSession();
  calendar.load();
  const jobs = await history.load();
  // A job already running or paused (started elsewhere, or before a reload): watch it.
  if (jobs && jobs.length && ['running', 'paused'].includes(jobs[0].status) && !progress.watchedTaskId()) {
    emit('watch', { taskId: jobs[0].task_id });
  }
}

main();
