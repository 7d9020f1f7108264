/* Pushed progress: the watched job's progress arrives over a WebSocket instead of polls.
 *
 * The server names its WebSocket in a meta tag (empty where none is deployed; its CSP's
 * connect-src allows it). A browser cannot send an Authorization header on a WebSocket, and
 * a token in a URL ends up in logs, so the page first trades its token for a one-time ticket
 * (POST live/ticket, valid 30 s), connects with it, and subscribes to the job. Each settled
 * day then pushes the job's progress: the same JSON the progress endpoint answers.
 * Whenever that does not work (no WebSocket deployed, no ticket route, refused, closed),
 * progress.js polls every 2 s, and this module tries again a little later.
 *
 * Events: listens to 'live-watch' {taskId} and 'live-unwatch'; emits 'live-progress'
 * {taskId, progress} and 'live-state' {taskId, up}.
 */
import { callApi, usingOwnApi } from './api.js';
import { emit, on } from './bus.js';
import { $, setText } from './dom.js';
import { t } from './i18n.js';

const RETRY_MS = [3000, 10000, 30000, 60000];
const PING_MS = 4 * 60 * 1000; // API Gateway closes a connection idle for 10 minutes

let wanted = null; // the task id to follow
let socket = null;
let up = false; // pushes are arriving for `wanted`
let failures = 0;
let retryTimer = null;
let pingTimer = null;

export function liveUrl() {
  const meta = document.querySelector('meta[name="stocksync-live-url"]');
  return meta ? meta.content.trim() : '';
}

/** Whether this page can be pushed to at all: a WebSocket deployed, and its own API in use. */
export function available() {
  return !!liveUrl() && usingOwnApi() && typeof WebSocket === 'function';
}

export function init() {
  on('live-watch', ({ taskId }) => follow(taskId));
  on('live-unwatch', () => follow(null));
  // Signed in again after a 401: try at once rather than at the next retry.
  on('auth', () => { if (wanted && !socket) { clearTimeout(retryTimer); open(); } });
  on('lang', renderMode);
  renderMode();
}

function follow(taskId) {
  if (taskId === wanted) return;
  wanted = taskId;
  setUp(false);
  failures = 0;
  clearTimeout(retryTimer);
  retryTimer = null;
  if (!taskId) { close(); return; }
  if (socket && socket.readyState === WebSocket.OPEN) subscribe();
  else if (!socket) open();
}

async function open() {
  retryTimer = null;
  if (!wanted) return;
  if (!available()) { setUp(false, true); return; }
  const answer = await callApi('POST', 'live/ticket', { quiet401: true });
  if (!wanted || socket) return;
  if (!answer.ok || !answer.data || typeof answer.data.ticket !== 'string') { lost(); return; }
  let ws;
  try {
    const url = new URL(liveUrl(), location.href);
    url.searchParams.set('ticket', answer.data.ticket);
    ws = new WebSocket(url.toString());
  } catch (err) { lost(); return; }
  socket = ws;
  ws.addEventListener('open', () => { if (socket === ws) subscribe(); });
  ws.addEventListener('message', (event) => { if (socket === ws) received(event.data); });
  ws.addEventListener('close', () => {
    if (socket !== ws) return;
    socket = null;
    stopPing();
    lost();
  });
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function subscribe() {
  send({ action: 'subscribe', task_id: wanted });
  stopPing();
  pingTimer = setInterval(() => send({ action: 'ping' }), PING_MS);
}

function received(text) {
  let message;
  try { message = JSON.parse(text); } catch (err) { return; }
  if (!message || typeof message !== 'object') return;
  if (message.type === 'progress' && message.task_id === wanted && message.data) {
    failures = 0;
    setUp(true);
    emit('live-progress', { taskId: message.task_id, progress: message.data });
  } else if (message.type === 'error' && message.code === 'not_connected') {
    close();
    lost();
  }
}

/** The connection failed or ended: polling takes over, and pushes are tried again later. */
function lost() {
  setUp(false, true);
  if (!wanted || retryTimer) return;
  retryTimer = setTimeout(open, RETRY_MS[Math.min(failures, RETRY_MS.length - 1)]);
  failures += 1;
}

function close() {
  stopPing();
  const ws = socket;
  socket = null;
  if (ws) ws.close(1000);
}

function stopPing() {
  if (pingTimer) clearInterval(pingTimer);
  pingTimer = null;
}

function setUp(next, tell) {
  const changed = next !== up;
  up = next;
  if (changed || tell) emit('live-state', { taskId: wanted, up });
  if (changed) renderMode();
}

function renderMode() {
  // The footer says how progress arrives; quietly, nothing is announced.
  const footer = $('footer-text');
  if (!footer) return;
  footer.dataset.i18n = up ? 'footer_live' : 'footer';
  setText(footer, t(footer.dataset.i18n));
}
