/* Signing in: the operator's bearer token, handed over once in the address (`#token=...`,
 * which `make serve` prints), kept in this tab's sessionStorage, shown as signed in or not
 * (GET whoami), and replaced by pasting another (the sign-in dialog) or dropped (sign out).
 *
 * An API without sign-in has no whoami route (404): then the page needs none and says so.
 */
import { callApi, getToken, setToken } from './api.js';
import { announce } from './announcer.js';
import { emit, on } from './bus.js';
import { $, setText, show } from './dom.js';
import { t } from './i18n.js';

// checking | signed-in | public (no token, reads open) | signed-out | open (no sign-in) | unknown
const session = { status: 'checking', name: null, role: null, needed: false };
let opener = null;

/** Take `#token=` out of the address (into sessionStorage) before anything else runs;
 * true if there was one. */
export function takeTokenFromAddress() {
  if (!location.hash.startsWith('#')) return false;
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (token === null) return false;
  params.delete('token');
  const rest = params.toString();
  history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  if (token.trim()) setToken(token.trim());
  return !!token.trim();
}

export function init() {
  $('signin-button').addEventListener('click', openDialog);
  $('auth-notice-signin').addEventListener('click', openDialog);
  $('signout-button').addEventListener('click', signOut);
  $('signin-form').addEventListener('submit', onSubmit);
  $('signin-cancel').addEventListener('click', () => $('signin-dialog').close());
  $('signin-dialog').addEventListener('close', () => {
    if (opener && opener.isConnected && !opener.hidden) opener.focus();
    else $('session-area').querySelector('button:not([hidden])')?.focus();
    opener = null;
  });
  on('unauthorized', () => {
    if (session.status === 'signed-in') {
      setToken(null); // the server no longer takes it
      session.status = 'signed-out';
    }
    session.needed = true;
    render();
  });
  on('lang', render);
  // An address with a token opened in this tab again only changes the fragment.
  window.addEventListener('hashchange', async () => {
    if (!takeTokenFromAddress()) return;
    await checkSession();
    emit('auth');
  });
  render();
}

/** Ask the API who this token is; resolves once the status is known. */
export async function checkSession() {
  const answer = await callApi('GET', 'whoami', { quiet401: true });
  applyWhoami(answer);
  render();
  return session;
}

function applyWhoami(answer) {
  session.name = null;
  session.role = null;
  if (answer.ok && answer.data) {
    session.status = answer.data.role ? 'signed-in' : 'public';
    session.name = answer.data.name;
    session.role = answer.data.role;
    if (session.status === 'signed-in') session.needed = false;
  } else if (answer.status === 401) {
    if (getToken()) setToken(null);
    session.status = 'signed-out';
    session.needed = true;
  } else if (noSignIn(answer)) {
    session.status = 'open';
    session.needed = false;
  } else {
    session.status = 'unknown';
  }
}

/** An API without sign-in has no whoami route: 404, or API Gateway's (and chalice local's)
 * 403 "Missing Authentication Token" for a route it does not know. */
function noSignIn(answer) {
  return answer.status === 404 || (answer.status === 403 && answer.foreign);
}

function render() {
  const status = $('session-status');
  const text = {
    checking: t('session_checking'),
    'signed-in': t('session_signed_in', { name: session.name, role: t('role_' + session.role) }),
    public: t('session_public'),
    'signed-out': t('session_signed_out'),
    open: t('session_open'),
    unknown: '',
  }[session.status];
  setText(status, text);
  status.classList.toggle('signed-in', session.status === 'signed-in');
  show($('signin-button'), ['public', 'signed-out', 'unknown'].includes(session.status));
  show($('signout-button'), session.status === 'signed-in');
  setText($('auth-notice-text'), t('unauthorized'));
  show($('auth-notice'), session.needed);
}

function openDialog(event) {
  opener = event.currentTarget;
  $('token-input').value = '';
  showError(null);
  $('signin-dialog').showModal();
  $('token-input').focus();
}

function showError(text) {
  const box = $('signin-error');
  setText(box, text || '');
  show(box, !!text);
  if (text) $('token-input').setAttribute('aria-invalid', 'true');
  else $('token-input').removeAttribute('aria-invalid');
}

async function onSubmit(event) {
  event.preventDefault();
  const token = $('token-input').value.trim();
  if (!token) {
    showError(t('signin_empty'));
    $('token-input').focus();
    return;
  }
  setToken(token);
  const answer = await callApi('GET', 'whoami', { quiet401: true });
  if (answer.status === 401) {
    setToken(null);
    showError(t('signin_rejected'));
    $('token-input').select();
    return;
  }
  if (!answer.ok && !noSignIn(answer)) {
    setToken(null);
    showError(t('signin_failed', { message: answer.message }));
    return;
  }
  applyWhoami(answer);
  render();
  // The button that opened the dialog may be gone now: the focus goes to sign-out.
  if (!$('signout-button').hidden) opener = $('signout-button');
  $('signin-dialog').close();
  opener?.focus();
  if (session.name) announce(t('ann_signed_in', { name: session.name }));
  emit('auth');
}

async function signOut() {
  setToken(null);
  await checkSession();
  $('signin-button').hidden ? $('lang-toggle').focus() : $('signin-button').focus();
  announce(t('ann_signed_out'));
  emit('auth');
}
