/* The API client: where the API is, the bearer token, and one answer shape for every call.
 *
 * Paths are relative to the page (`api/v1/sync-status/...`), so the page works at
 * /sync-status locally and at /{stage}/sync-status behind API Gateway. `?api=<base>` may
 * point it at another API, but only at an origin the server configured (PAGE_API_ORIGINS,
 * handed over in a meta tag; the page's CSP allows no other).
 */
import { emit } from './bus.js';
import { currentLang, t } from './i18n.js';

const TOKEN_KEY = 'stocksync.token';
let base = null;
let refusedOrigin = null;
let ownApi = true; // false once `?api=` points the page at another API

export function allowedOrigins() {
  const meta = document.querySelector('meta[name="stocksync-api-origins"]');
  return (meta ? meta.content : '').split(/\s+/).filter(Boolean);
}

export function initApiBase() {
  base = new URL('.', location.href); // /sync-status -> /, /api/sync-status -> /api/
  const given = new URLSearchParams(location.search).get('api');
  if (!given) return;
  let url;
  try { url = new URL(given, location.href); } catch (err) { refusedOrigin = given; return; }
  if (url.origin !== location.origin && !allowedOrigins().includes(url.origin)) {
    refusedOrigin = url.origin;
    return;
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  url.search = '';
  url.hash = '';
  base = url;
  ownApi = url.toString() === new URL('.', location.href).toString();
}

/** Whether the page talks to the API that served it (whose WebSocket its meta tag names). */
export function usingOwnApi() { return ownApi; }

/** The origin a refused `?api=` named, or null. */
export function refusedApiOrigin() { return refusedOrigin; }

export function apiRoot() { return new URL('api/v1/sync-status/', base).toString(); }

export function apiUrl(path, params) {
  const url = new URL('api/v1/sync-status/' + path, base);
  for (const [key, value] of Object.entries(params || {})) url.searchParams.set(key, value);
  url.searchParams.set('lang', currentLang());
  return url.toString();
}

// --- the token: this tab's sessionStorage only --------------------------------

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY); } catch (err) { return null; }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (err) { /* storage may be disabled: the token lives as long as nothing */ }
}

/**
 * Call the API. Always resolves to {ok, status, data, code, message}: a network failure
 * is status 0, an answer that is not the API's envelope is `bad_answer` (and `foreign`). A 401 tells the
 * page it needs signing in (event `unauthorized`) unless `quiet401` is set.
 */
export async function callApi(method, path, options = {}) {
  const headers = {};
  const token = getToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  let response;
  try {
    // Bodies go without a Content-Type (text/plain, as the seed's page sent them).
    response = await fetch(apiUrl(path, options.params), {
      method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (err) {
    return { ok: false, status: 0, message: t('network_error', { detail: err.message }) };
  }
  let payload = null;
  try { payload = await response.json(); } catch (err) { payload = null; }
  const envelope = payload && typeof payload === 'object' && typeof payload.status === 'string';
  if (response.ok && envelope && payload.status === 'success') {
    return { ok: true, status: response.status, data: payload.data };
  }
  if (response.status === 401) {
    if (!options.quiet401) emit('unauthorized');
    return { ok: false, status: 401, code: 'unauthorized', message: t('unauthorized_short') };
  }
  if (response.status === 403 && envelope && payload.code === 'forbidden') {
    return { ok: false, status: 403, code: 'forbidden', message: t('forbidden') };
  }
  if (!envelope) {
    // Not the API's own answer: a gateway's, or a route this API does not have.
    return { ok: false, status: response.status, foreign: true, message: t('bad_answer', { status: response.status }) };
  }
  return {
    ok: false, status: response.status, code: payload.code, data: payload.data,
    message: payload.message || t('bad_answer', { status: response.status }),
  };
}
