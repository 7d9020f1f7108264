/* The page's language: which one, its words (messages-zh.js, messages-en.js), numbers,
 * times and durations.
 * Chinese by default; `?lang=en` or the language button (remembered) switch it.
 */
import { emit } from './bus.js';
import { EN } from './messages-en.js';
import { ZH } from './messages-zh.js';

const LANG_KEY = 'stocksync.lang';
const MESSAGES = { zh: ZH, en: EN };
let lang = 'zh';

export function currentLang() { return lang; }

export function t(key, params) {
  const table = MESSAGES[lang] || MESSAGES.zh;
  let text = key in table ? table[key] : MESSAGES.zh[key];
  if (typeof text !== 'string') return text;
  if (params) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
  return text;
}

/** A skip reason (`already_synced`) in words; an unknown one as it is. */
export function reasonText(reason) {
  const text = t('reason_' + reason);
  return text === undefined ? reason : text;
}

/**
 * An API message in the form's words: the API names its JSON fields (`start_date`), a
 * person reads the labels beside the inputs (开始日期 / Start date).
 */
export function inFormWords(message) {
  const labels = { start_date: t('start_label'), end_date: t('end_label') };
  if (lang === 'en') return message.replace(/\b(start_date|end_date)\b/g, (m, f) => labels[f]);
  return message.replace(/(?:参数\s*)?\b(start_date|end_date)\b(?:\s*日期(?=格式))?\s*/g,
    (m, f) => labels[f]);
}

export function initLang() {
  const fromUrl = new URLSearchParams(location.search).get('lang');
  if (fromUrl) {
    lang = fromUrl.toLowerCase().startsWith('en') ? 'en' : 'zh';
    return;
  }
  try {
    const stored = localStorage.getItem(LANG_KEY);
    if (stored === 'en' || stored === 'zh') lang = stored;
  } catch (err) { /* storage may be disabled */ }
}

export function setLang(next) {
  lang = next;
  try { localStorage.setItem(LANG_KEY, next); } catch (err) { /* ignore */ }
  const url = new URL(location.href);
  if (url.searchParams.has('lang')) {
    url.searchParams.set('lang', next);
    history.replaceState(history.state, '', url.toString());
  }
  applyStaticText();
  emit('lang');
}

/** Words written in the HTML: `data-i18n` (text) and `data-i18n-label` (aria-label). */
export function applyStaticText() {
  document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
  document.title = t('doc_title');
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-label]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nLabel));
    el.title = t(el.dataset.i18nLabel);
  }
}

function locale() { return lang === 'en' ? 'en-US' : 'zh-CN'; }

export function fmtInt(n) { return new Intl.NumberFormat(locale()).format(n || 0); }

/** A day's row count as the calendar cell shows it (and its name says). */
export function fmtRows(n) {
  if (n < 100000) return fmtInt(n);
  return new Intl.NumberFormat(locale(), { notation: 'compact', maximumFractionDigits: 1 }).format(n);
}

export function fmtTime(isoTime) {
  if (!isoTime) return '—';
  return new Date(isoTime).toLocaleString(locale(), {
    year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
  });
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return '—';
  const s = Math.max(0, seconds);
  if (s < 60) return t('dur_s', { s: s < 10 ? s.toFixed(1) : Math.round(s) });
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  if (h) return t('dur_hm', { h, m });
  return t('dur_ms', { m, s: String(total % 60).padStart(2, '0') });
}

export function monthName(isoDate) {
  return new Date(isoDate + 'T00:00:00Z').toLocaleString('en-US', { month: 'long', timeZone: 'UTC' });
}
