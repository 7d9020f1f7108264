/* stocksync's sync page: start a batch sync, watch it, see every date's state.
 *
 * Plain JavaScript, no build step. API calls use paths relative to this page's
 * address (`api/v1/sync-status/...`), so the page works at /sync-status locally
 * and at /{stage}/sync-status behind API Gateway; `?api=<base url>` points it at
 * another API, `?lang=en` opens it in English.
 */
(function () {
  'use strict';

  const POLL_MS = 2000;                 // the seed's polling interval
  const WATCH_LIMIT_MS = 30 * 60 * 1000; // the seed's 30 minutes, then stop polling
  const DEFAULT_MAX_DAYS = 90;           // until the API tells its own limit
  const DEFAULT_RANGE_DAYS = 7;
  const RECENT_MONTHS = 6;
  const MAX_WINDOW_DAYS = 400;           // what the dates endpoint accepts
  const LANG_KEY = 'stocksync.lang';
  const STATES = ['synced', 'not_synced', 'failed', 'skipped', 'non_trading', 'pending', 'running'];

  const I18N = {
    zh: {
      doc_title: '股票数据同步',
      title: '股票数据同步',
      subtitle: '按日期范围把 tushare 日线数据同步到数据库',
      lang_button: 'English',
      lang_button_label: 'Switch to English',
      sync_heading: '批量同步',
      start_label: '开始日期',
      end_label: '结束日期',
      force_label: '强制重新同步（已同步的日期也重新获取）',
      hint: '最多 {max} 天，结束日期不晚于今天 {today}（北京时间）。',
      start_button: '开始同步',
      starting: '正在启动…',
      progress_heading: '同步进度',
      progress_empty: '尚未开始同步。选择日期范围后点击“开始同步”。',
      task_label: '任务',
      conflict_suffix: '下面是正在运行的任务的进度。',
      status_running: '同步中',
      status_completed: '已完成',
      status_completed_failures: '已完成（有失败）',
      status_cancelled: '已取消',
      stat_current: '当前日期',
      stat_done: '已处理',
      stat_success: '成功',
      stat_failed: '失败',
      stat_skipped: '跳过',
      stat_rows: '写入行数',
      stat_elapsed: '已用时间',
      stat_eta: '预计剩余',
      eta_pending: '计算中…',
      line_starting: '同步任务已启动，正在同步 {total} 天的数据...',
      line_running: '正在同步 {date}...',
      summary_completed: '批量同步完成: 成功{success}, 失败{failed}, 跳过{skipped}',
      summary_cancelled: '批量同步已取消: 成功{success}, 失败{failed}, 跳过{skipped}',
      summary_rows: '共写入 {rows} 行，用时 {elapsed}。',
      summary_failed_hint: '有 {failed} 天同步失败，可在日历或任务历史中查看原因。',
      poll_timeout: '已停止自动刷新：30 分钟内任务未完成。任务仍在后台运行。',
      poll_error: '暂时无法获取进度（{message}），将继续重试。',
      cancel_button: '取消任务',
      cancel_confirm: '确定取消该任务吗？尚未开始的日期将被跳过。',
      resume_button: '继续查看进度',
      progress_label: '同步进度 {percent}%',
      calendar_heading: '日历',
      view_range: '所选范围',
      view_recent: '最近 {n} 个月',
      cal_prev: '更早的月份',
      cal_next: '更晚的月份',
      legend: '图例',
      calendar_hint: '点击日期查看详情，并可设为开始或结束日期。',
      calendar_summary: '{start} 至 {end}：已同步 {synced} 天（{rows} 行），未同步的交易日 {gaps} 天，失败 {failed} 天，非交易日 {closed} 天。',
      state_synced: '已同步',
      state_failed: '失败',
      state_skipped: '已跳过',
      state_non_trading: '非交易日',
      state_not_synced: '未同步',
      state_pending: '排队中',
      state_running: '同步中',
      state_future: '未来日期',
      reason_non_trading_day: '非交易日',
      reason_already_synced: '已同步过',
      reason_cancelled: '任务已取消',
      reason_queue_unavailable: '消息队列不可用',
      tip_rows: '{rows} 行',
      tip_synced_at: '同步于 {time}',
      tip_error: '错误：{error}',
      tip_reason: '原因：{reason}',
      tip_trading: '交易日',
      tip_calendar_unknown: '该年的交易日历尚未缓存',
      tip_task: '任务 {task}',
      set_start: '设为开始日期',
      set_end: '设为结束日期',
      weekdays: ['一', '二', '三', '四', '五', '六', '日'],
      weekdays_long: ['星期一', '星期二', '星期三', '星期四', '星期五', '星期六', '星期日'],
      month_title: '{year}年{month}月',
      history_heading: '任务历史',
      refresh: '刷新',
      col_range: '日期范围',
      col_status: '状态',
      col_outcome: '结果',
      col_rows: '行数',
      col_created: '开始时间',
      col_duration: '用时',
      col_days: '每日明细',
      outcome: '成功 {success} · 失败 {failed} · 跳过 {skipped}',
      forced: '强制',
      in_progress: '进行中',
      show_days: '查看每日',
      hide_days: '收起',
      watch_job: '查看进度',
      days_date: '日期',
      days_status: '状态',
      days_detail: '说明',
      days_attempts: '尝试次数',
      days_rows: '行数',
      days_loading: '加载中…',
      day_success: '成功',
      day_failed: '失败',
      day_skipped: '跳过',
      day_pending: '排队中',
      day_running: '同步中',
      history_empty: '还没有同步任务。',
      footer: '数据来源 tushare · 进度每 2 秒刷新',
      api_label: 'API：{base}',
      network_error: '无法连接到 API：{detail}',
      bad_answer: 'API 返回了无法识别的结果（HTTP {status}）',
      dur_s: '{s} 秒',
      dur_ms: '{m} 分 {s} 秒',
      dur_hm: '{h} 小时 {m} 分',
      // The API's own words (chalicelib/validation.py), so both checks read the same.
      v_missing: '缺少参数 {field}（格式 YYYY-MM-DD）',
      v_format: "{field} 日期格式错误: '{value}'，应为 YYYY-MM-DD",
      v_invalid: '{field} 不是有效日期: {value}',
      v_reversed: '开始日期 {start} 不能晚于结束日期 {end}',
      v_too_long: '日期范围不能超过{max}天（当前 {span} 天）',
      v_future: '结束日期 {end} 不能晚于今天 {today}（北京时间）',
    },
    en: {
      doc_title: 'Stock data sync',
      title: 'Stock data sync',
      subtitle: 'Sync tushare daily bars into the database, one date range at a time',
      lang_button: '中文',
      lang_button_label: '切换到中文',
      sync_heading: 'Batch sync',
      start_label: 'Start date',
      end_label: 'End date',
      force_label: 'Force re-sync (fetch dates already synced again)',
      hint: 'At most {max} days; the end date no later than today, {today} (Beijing time).',
      start_button: 'Start sync',
      starting: 'Starting…',
      progress_heading: 'Progress',
      progress_empty: 'No sync yet. Choose a date range and press “Start sync”.',
      task_label: 'Task',
      conflict_suffix: 'Below is the running job’s progress.',
      status_running: 'Running',
      status_completed: 'Completed',
      status_completed_failures: 'Completed with failures',
      status_cancelled: 'Cancelled',
      stat_current: 'Current date',
      stat_done: 'Processed',
      stat_success: 'Succeeded',
      stat_failed: 'Failed',
      stat_skipped: 'Skipped',
      stat_rows: 'Rows written',
      stat_elapsed: 'Elapsed',
      stat_eta: 'Time left',
      eta_pending: 'estimating…',
      line_starting: 'Job started: syncing {total} days...',
      line_running: 'Syncing {date}...',
      summary_completed: 'Batch sync finished: {success} succeeded, {failed} failed, {skipped} skipped',
      summary_cancelled: 'Batch sync cancelled: {success} succeeded, {failed} failed, {skipped} skipped',
      summary_rows: '{rows} rows written in {elapsed}.',
      summary_failed_hint: '{failed} days failed; see why in the calendar or the job history.',
      poll_timeout: 'Stopped refreshing: the job did not finish within 30 minutes. It keeps running in the background.',
      poll_error: 'Could not fetch the progress ({message}); retrying.',
      cancel_button: 'Cancel job',
      cancel_confirm: 'Cancel this job? Dates not started yet will be skipped.',
      resume_button: 'Keep watching',
      progress_label: 'Sync progress {percent}%',
      calendar_heading: 'Calendar',
      view_range: 'Selected range',
      view_recent: 'Last {n} months',
      cal_prev: 'Earlier months',
      cal_next: 'Later months',
      legend: 'Legend',
      calendar_hint: 'Click a date for its details, or to use it as the start or end.',
      calendar_summary: '{start} to {end}: {synced} days synced ({rows} rows), {gaps} trading days not synced, {failed} failed, {closed} non-trading days.',
      state_synced: 'Synced',
      state_failed: 'Failed',
      state_skipped: 'Skipped',
      state_non_trading: 'Non-trading day',
      state_not_synced: 'Not synced',
      state_pending: 'Queued',
      state_running: 'Syncing',
      state_future: 'In the future',
      reason_non_trading_day: 'not a trading day',
      reason_already_synced: 'already synced',
      reason_cancelled: 'job cancelled',
      reason_queue_unavailable: 'queue unavailable',
      tip_rows: '{rows} rows',
      tip_synced_at: 'synced {time}',
      tip_error: 'Error: {error}',
      tip_reason: 'Reason: {reason}',
      tip_trading: 'trading day',
      tip_calendar_unknown: 'that year’s trading calendar is not cached yet',
      tip_task: 'task {task}',
      set_start: 'Use as start',
      set_end: 'Use as end',
      weekdays: ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'],
      weekdays_long: ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'],
      month_title: '{monthName} {year}',
      history_heading: 'Job history',
      refresh: 'Refresh',
      col_range: 'Range',
      col_status: 'Status',
      col_outcome: 'Outcome',
      col_rows: 'Rows',
      col_created: 'Started',
      col_duration: 'Duration',
      col_days: 'Days',
      outcome: '{success} ok · {failed} failed · {skipped} skipped',
      forced: 'forced',
      in_progress: 'running',
      show_days: 'Show days',
      hide_days: 'Hide days',
      watch_job: 'Watch',
      days_date: 'Date',
      days_status: 'Status',
      days_detail: 'Details',
      days_attempts: 'Attempts',
      days_rows: 'Rows',
      days_loading: 'Loading…',
      day_success: 'Succeeded',
      day_failed: 'Failed',
      day_skipped: 'Skipped',
      day_pending: 'Queued',
      day_running: 'Syncing',
      history_empty: 'No sync jobs yet.',
      footer: 'Data: tushare · progress refreshes every 2 seconds',
      api_label: 'API: {base}',
      network_error: 'Cannot reach the API: {detail}',
      bad_answer: 'The API answered something unexpected (HTTP {status})',
      dur_s: '{s} s',
      dur_ms: '{m} min {s} s',
      dur_hm: '{h} h {m} min',
      v_missing: '{field} is required (format YYYY-MM-DD)',
      v_format: "{field} must be a date as YYYY-MM-DD, got '{value}'",
      v_invalid: '{field} is not a real date: {value}',
      v_reversed: 'start_date {start} must not be after end_date {end}',
      v_too_long: 'The range must be at most {max} days (got {span})',
      v_future: 'end_date {end} must not be after today {today} (Beijing time)',
    },
  };

  const $ = (id) => document.getElementById(id);

  const state = {
    lang: 'zh',
    apiBase: null,
    today: null,          // Beijing date, from the API once it answers
    maxDays: DEFAULT_MAX_DAYS,
    watch: null,          // {taskId, since, timer, lastCurrent}
    progress: null,
    conflict: null,       // the API's 409 message
    pollError: null,
    timedOut: false,
    formError: null,      // {key, params} (checked here) or {text, kind} (from the API)
    view: 'range',
    shift: 0,             // months the calendar window is moved by
    dates: null,          // the last dates answer
    datesSeq: 0,
    selectedDay: null,
    jobs: null,
    openJobs: new Map(),  // task_id -> days (null while loading)
    pickNext: 'start',
  };

  // --- text ------------------------------------------------------------------

  function t(key, params) {
    const table = I18N[state.lang] || I18N.zh;
    let text = key in table ? table[key] : I18N.zh[key];
    if (typeof text !== 'string') return text;
    if (params) {
      text = text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
    }
    return text;
  }

  function locale() { return state.lang === 'en' ? 'en-US' : 'zh-CN'; }
  function fmtInt(n) { return new Intl.NumberFormat(locale()).format(n || 0); }
  function fmtCompact(n) {
    return new Intl.NumberFormat(locale(), { notation: 'compact', maximumFractionDigits: 1 }).format(n);
  }
  function fmtTime(iso) {
    if (!iso) return '—';
    return new Date(iso).toLocaleString(locale(), {
      year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
    });
  }
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '—';
    const s = Math.max(0, seconds);
    if (s < 60) return t('dur_s', { s: s < 10 ? s.toFixed(1) : Math.round(s) });
    const total = Math.round(s);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    if (h) return t('dur_hm', { h, m });
    return t('dur_ms', { m, s: String(total % 60).padStart(2, '0') });
  }

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function show(el, visible) { el.hidden = !visible; }

  // --- dates (ISO strings, computed in UTC so no time zone shifts them) -------

  function parseIso(iso) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || '');
    if (!m) return null;
    const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
    return d.getUTCMonth() === +m[2] - 1 && d.getUTCDate() === +m[3] ? d : null;
  }
  function iso(d) { return d.toISOString().slice(0, 10); }
  function addDays(isoDate, n) { const d = parseIso(isoDate); d.setUTCDate(d.getUTCDate() + n); return iso(d); }
  function daysBetween(a, b) { return Math.round((parseIso(b) - parseIso(a)) / 86400000); }
  function monthStart(isoDate) { return isoDate.slice(0, 8) + '01'; }
  function addMonths(isoDate, n) {
    const d = parseIso(monthStart(isoDate));
    d.setUTCMonth(d.getUTCMonth() + n);
    return iso(d);
  }
  function monthEnd(isoDate) { return addDays(addMonths(isoDate, 1), -1); }
  function weekdayIndex(isoDate) { return (parseIso(isoDate).getUTCDay() + 6) % 7; } // Monday 0

  function beijingToday() {
    const parts = {};
    for (const p of new Intl.DateTimeFormat('en-US', {
      timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit',
    }).formatToParts(new Date())) parts[p.type] = p.value;
    return `${parts.year}-${parts.month}-${parts.day}`;
  }
  function today() { return state.today || beijingToday(); }

  // --- the API ---------------------------------------------------------------

  function resolveApiBase() {
    const given = new URLSearchParams(location.search).get('api');
    if (given) {
      const url = new URL(given, location.href);
      if (!url.pathname.endsWith('/')) url.pathname += '/';
      url.search = '';
      return url;
    }
    // /sync-status -> /, /api/sync-status -> /api/ (API Gateway's stage prefix)
    return new URL('.', location.href);
  }

  function apiUrl(path, params) {
    const url = new URL('api/v1/sync-status/' + path, state.apiBase);
    for (const [key, value] of Object.entries(params || {})) url.searchParams.set(key, value);
    url.searchParams.set('lang', state.lang);
    return url.toString();
  }

  // Bodies go as text/plain (no Content-Type set): a simple request, no CORS preflight.
  async function callApi(method, path, options) {
    const opts = options || {};
    let response;
    try {
      response = await fetch(apiUrl(path, opts.params), {
        method, cache: 'no-store',
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      });
    } catch (err) {
      return { ok: false, status: 0, message: t('network_error', { detail: err.message }) };
    }
    let payload = null;
    try { payload = await response.json(); } catch (err) { payload = null; }
    if (!payload || typeof payload !== 'object') {
      return { ok: false, status: response.status, message: t('bad_answer', { status: response.status }) };
    }
    if (response.ok && payload.status === 'success') {
      return { ok: true, status: response.status, data: payload.data };
    }
    return {
      ok: false, status: response.status, code: payload.code, data: payload.data,
      message: payload.message || t('bad_answer', { status: response.status }),
    };
  }

  // --- language --------------------------------------------------------------

  function initialLang() {
    const fromUrl = new URLSearchParams(location.search).get('lang');
    if (fromUrl) return fromUrl.toLowerCase().startsWith('en') ? 'en' : 'zh';
    try {
      const stored = localStorage.getItem(LANG_KEY);
      if (stored === 'en' || stored === 'zh') return stored;
    } catch (err) { /* storage may be disabled */ }
    return 'zh';
  }

  function setLang(lang) {
    state.lang = lang;
    try { localStorage.setItem(LANG_KEY, lang); } catch (err) { /* ignore */ }
    const url = new URL(location.href);
    if (url.searchParams.has('lang')) {
      url.searchParams.set('lang', lang);
      history.replaceState(null, '', url.toString());
    }
    applyStaticText();
    renderAll();
    // The API's own messages (validation, conflict) follow the language from now on.
    if (state.formError && state.formError.text) clearFormError();
  }

  function applyStaticText() {
    document.documentElement.lang = state.lang === 'en' ? 'en' : 'zh-CN';
    document.title = t('doc_title');
    for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll('[data-i18n-label]')) {
      el.setAttribute('aria-label', t(el.dataset.i18nLabel));
      el.title = t(el.dataset.i18nLabel);
    }
    const toggle = $('lang-toggle');
    toggle.textContent = t('lang_button');
    toggle.setAttribute('aria-label', t('lang_button_label'));
    toggle.lang = state.lang === 'en' ? 'zh-CN' : 'en';
    $('view-recent').textContent = t('view_recent', { n: RECENT_MONTHS });
    $('legend').setAttribute('aria-label', t('legend'));
    $('api-base').textContent = t('api_label', { base: new URL('api/v1/sync-status/', state.apiBase).toString() });
  }

  function renderAll() {
    renderHint();
    renderFormError();
    renderProgress();
    renderCalendar();
    renderHistory();
  }

  // --- the form and its checks -----------------------------------------------

  function formValues() {
    return { start: $('start-date').value, end: $('end-date').value, force: $('force').checked };
  }

  function checkDate(value, field) {
    if (!value) return { error: { key: 'v_missing', params: { field } } };
    if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return { error: { key: 'v_format', params: { field, value } } };
    if (!parseIso(value)) return { error: { key: 'v_invalid', params: { field, value } } };
    return { value };
  }

  /** The API's rules, in its order, with its messages; null when the range is fine. */
  function validate(values) {
    const start = checkDate(values.start, 'start_date');
    if (start.error) return { ...start.error, field: 'start-date' };
    const end = checkDate(values.end, 'end_date');
    if (end.error) return { ...end.error, field: 'end-date' };
    if (values.start > values.end) {
      return { key: 'v_reversed', params: { start: values.start, end: values.end }, field: 'start-date' };
    }
    const span = daysBetween(values.start, values.end) + 1;
    if (span > state.maxDays) {
      return { key: 'v_too_long', params: { max: state.maxDays, span }, field: 'end-date' };
    }
    if (values.end > today()) {
      return { key: 'v_future', params: { end: values.end, today: today() }, field: 'end-date' };
    }
    return null;
  }

  function selectedRange() {
    const v = formValues();
    if (!parseIso(v.start) || !parseIso(v.end) || v.start > v.end) return null;
    return { start: v.start, end: v.end };
  }

  function renderHint() { $('form-hint').textContent = t('hint', { max: state.maxDays, today: today() }); }

  function setFormError(error) { state.formError = error; renderFormError(); }
  function clearFormError() { state.formError = null; renderFormError(); }

  function renderFormError() {
    const box = $('form-error');
    const error = state.formError;
    for (const id of ['start-date', 'end-date']) $(id).removeAttribute('aria-invalid');
    if (!error) { show(box, false); box.textContent = ''; return; }
    box.textContent = error.text || t(error.key, error.params);
    box.className = 'notice ' + (error.kind === 'warn' ? 'warn' : 'error');
    if (error.field) $(error.field).setAttribute('aria-invalid', 'true');
    show(box, true);
  }

  function onRangeInput() {
    const error = validate(formValues());
    setFormError(error);
    state.shift = 0;
    if (state.view === 'range') loadCalendar();
  }

  async function onSubmit(event) {
    event.preventDefault();
    const values = formValues();
    const error = validate(values);
    if (error) {
      setFormError(error);
      $(error.field).focus();
      return;
    }
    const button = $('start-button');
    button.disabled = true;
    button.textContent = t('starting');
    const body = { start_date: values.start, end_date: values.end };
    if (values.force) body.force = true;
    const answer = await callApi('POST', 'sync/batch', { body });
    button.disabled = false;
    button.textContent = t('start_button');
    if (answer.ok) {
      clearFormError();
      watch(answer.data.task_id);
      loadHistory();
      loadCalendar();
    } else if (answer.status === 409 && answer.data && answer.data.task_id) {
      setFormError({ text: answer.message, kind: 'warn' });
      watch(answer.data.task_id, answer.message);
      loadHistory();
    } else {
      setFormError({ text: answer.message });
    }
  }

  // --- progress --------------------------------------------------------------

  function watch(taskId, conflictMessage) {
    stopWatching();
    state.watch = { taskId, since: Date.now(), timer: null, lastCurrent: -1 };
    state.progress = null;
    state.conflict = conflictMessage || null;
    state.pollError = null;
    state.timedOut = false;
    renderProgress();
    poll();
  }

  function stopWatching() {
    if (state.watch && state.watch.timer) clearTimeout(state.watch.timer);
    if (state.watch) state.watch.timer = null;
  }

  async function poll() {
    const w = state.watch;
    if (!w) return;
    w.timer = null;
    const answer = await callApi('GET', 'sync/batch/progress/' + encodeURIComponent(w.taskId));
    if (state.watch !== w) return; // another job is being watched now
    if (answer.ok) {
      const p = answer.data;
      state.progress = p;
      state.pollError = null;
      if (p.current !== w.lastCurrent) {
        w.lastCurrent = p.current;
        loadCalendar();
      }
      if (p.status !== 'running') {
        renderProgress();
        loadHistory();
        loadCalendar();
        return;
      }
    } else if (answer.status === 404) {
      state.pollError = answer.message;
      renderProgress();
      return;
    } else {
      state.pollError = answer.message;
    }
    if (Date.now() - w.since >= WATCH_LIMIT_MS) {
      state.timedOut = true;
      renderProgress();
      return;
    }
    renderProgress();
    w.timer = setTimeout(poll, POLL_MS);
  }

  function statusBadge(status, failed) {
    if (status === 'completed' && failed > 0) return { text: t('status_completed_failures'), cls: 'warn' };
    const cls = { running: 'running', completed: 'ok', cancelled: 'muted' }[status] || 'muted';
    return { text: t('status_' + status) || status, cls };
  }

  function renderProgress() {
    const w = state.watch;
    show($('progress-empty'), !w);
    show($('progress-view'), !!w);
    const badge = $('job-status');
    if (!w) { show(badge, false); return; }
    const p = state.progress;

    const conflict = $('conflict-notice');
    conflict.replaceChildren(...(state.conflict
      ? [h('strong', { text: state.conflict }), h('span', { class: 'block', text: t('conflict_suffix') })] : []));
    show(conflict, !!state.conflict);

    $('task-id').textContent = w.taskId;
    $('task-range').textContent = p ? `${p.start_date} → ${p.end_date}${p.force ? ' · ' + t('forced') : ''}` : '';

    const percent = p ? p.percent : 0;
    const bar = $('progress-bar');
    bar.setAttribute('aria-valuenow', String(percent));
    bar.setAttribute('aria-label', t('progress_label', { percent }));
    bar.classList.toggle('done', !!p && p.status !== 'running');
    bar.classList.toggle('has-failures', !!p && p.failed > 0);
    $('progress-fill').style.width = percent + '%';
    $('percent').textContent = percent + '%';

    if (p) {
      const b = statusBadge(p.status, p.failed);
      badge.textContent = b.text;
      badge.className = 'badge ' + b.cls;
      show(badge, true);
    } else {
      show(badge, false);
    }

    const running = !!p && p.status === 'running';
    let line = '';
    if (p && running) {
      line = p.current === 0 || !p.current_date ? t('line_starting', { total: p.total })
        : t('line_running', { date: p.current_date });
    }
    $('progress-line').textContent = line;

    $('stat-current').textContent = p && p.current_date ? p.current_date : '—';
    $('stat-done').textContent = p ? `${p.current} / ${p.total}` : '—';
    $('stat-success').textContent = p ? fmtInt(p.success) : '0';
    $('stat-failed').textContent = p ? fmtInt(p.failed) : '0';
    $('stat-skipped').textContent = p ? fmtInt(p.skipped) : '0';
    $('stat-rows').textContent = p ? fmtInt(p.rows) : '0';
    $('stat-elapsed').textContent = p ? fmtDuration(p.elapsed_s) : '—';
    let eta = '—';
    if (running) {
      eta = p.current > 0 ? fmtDuration((p.elapsed_s / p.current) * (p.total - p.current)) : t('eta_pending');
    }
    $('stat-eta').textContent = eta;

    const summary = $('summary');
    if (p && !running) {
      const counts = { success: p.success, failed: p.failed, skipped: p.skipped };
      summary.replaceChildren(
        h('strong', { text: t(p.status === 'cancelled' ? 'summary_cancelled' : 'summary_completed', counts) }),
        h('span', { text: ' ' + t('summary_rows', { rows: fmtInt(p.rows), elapsed: fmtDuration(p.elapsed_s) }) }),
        ...(p.failed > 0 ? [h('span', { class: 'block', text: t('summary_failed_hint', { failed: p.failed }) })] : []),
      );
      summary.className = 'notice ' + (p.status === 'cancelled' ? 'muted' : p.failed > 0 ? 'warn' : 'ok');
      show(summary, true);
    } else {
      show(summary, false);
    }

    const notice = $('poll-notice');
    const pollText = state.timedOut ? t('poll_timeout')
      : state.pollError ? t('poll_error', { message: state.pollError }) : '';
    notice.textContent = pollText;
    show(notice, !!pollText);

    show($('cancel-button'), running && !state.timedOut);
    show($('resume-button'), running && state.timedOut);
  }

  async function onCancel() {
    const w = state.watch;
    if (!w || !window.confirm(t('cancel_confirm'))) return;
    const answer = await callApi('POST', 'sync/batch/cancel/' + encodeURIComponent(w.taskId));
    if (answer.ok && state.watch === w) {
      state.progress = answer.data;
      renderProgress();
      loadHistory();
      loadCalendar();
    } else if (!answer.ok) {
      state.pollError = answer.message;
      renderProgress();
    }
  }

  // --- calendar --------------------------------------------------------------

  function calendarWindow() {
    const range = state.view === 'range' ? selectedRange() : null;
    let first;
    let last;
    if (range && daysBetween(monthStart(range.start), monthEnd(range.end)) < MAX_WINDOW_DAYS) {
      first = monthStart(range.start);
      last = monthStart(range.end);
    } else {
      last = monthStart(today());
      first = addMonths(last, -(RECENT_MONTHS - 1));
    }
    first = addMonths(first, state.shift);
    last = addMonths(last, state.shift);
    return { start: first, end: monthEnd(last), range };
  }

  async function loadCalendar() {
    const win = calendarWindow();
    const seq = ++state.datesSeq;
    const answer = await callApi('GET', 'dates', { params: { start: win.start, end: win.end } });
    if (seq !== state.datesSeq) return; // a newer request was made meanwhile
    const box = $('calendar-error');
    if (!answer.ok) {
      box.textContent = answer.message;
      show(box, true);
      return;
    }
    show(box, false);
    const firstAnswer = !state.dates;
    state.dates = answer.data;
    if (answer.data.today) state.today = answer.data.today;
    if (answer.data.max_range_days) state.maxDays = answer.data.max_range_days;
    renderHint();
    if (firstAnswer && state.formError && state.formError.key) setFormError(validate(formValues()));
    renderCalendar();
  }

  function dateLabel(day) {
    const weekday = t('weekdays_long')[weekdayIndex(day.date)];
    const future = day.date > today();
    const parts = [`${day.date} ${weekday}`];
    parts.push(future && day.state === 'not_synced' ? t('state_future') : t('state_' + day.state));
    if (day.rows !== null && day.rows !== undefined) parts.push(t('tip_rows', { rows: fmtInt(day.rows) }));
    if (day.skip_reason && !(day.state === 'non_trading' && day.skip_reason === 'non_trading_day')) {
      parts.push(t('tip_reason', { reason: reasonText(day.skip_reason) }));
    }
    if (day.error) parts.push(t('tip_error', { error: day.error }));
    if (day.state === 'not_synced' && !future) {
      if (day.trading === true) parts.push(t('tip_trading'));
      if (day.trading === null) parts.push(t('tip_calendar_unknown'));
    }
    return parts.join(' · ');
  }

  function reasonText(reason) {
    const key = 'reason_' + reason;
    return key in I18N.zh ? t(key) : reason;
  }

  function monthTitle(first) {
    const d = parseIso(first);
    const monthName = d.toLocaleString('en-US', { month: 'long', timeZone: 'UTC' });
    return t('month_title', { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, monthName });
  }

  function renderLegend(counts) {
    const legend = $('legend');
    legend.replaceChildren(...STATES.map((s) => h('li', { class: 'legend-item' },
      h('span', { class: 'swatch s-' + s, 'aria-hidden': 'true' }),
      h('span', { text: t('state_' + s) }),
      counts ? h('span', { class: 'count', text: fmtInt(counts[s] || 0) }) : null)));
  }

  function renderCalendar() {
    const data = state.dates;
    const container = $('calendar');
    const win = calendarWindow();
    $('view-range').setAttribute('aria-pressed', String(state.view === 'range'));
    $('view-recent').setAttribute('aria-pressed', String(state.view === 'recent'));
    $('cal-next').disabled = monthStart(win.end) >= monthStart(today());
    if (!data) { renderLegend(null); return; }
    const byDate = new Map(data.dates.map((d) => [d.date, d]));
    const range = selectedRange();
    const now = today();

    // The legend counts what is shown, up to today.
    const counts = {};
    for (const d of data.dates) if (d.date <= now) counts[d.state] = (counts[d.state] || 0) + 1;
    renderLegend(counts);
    renderCalendarSummary(range, byDate);

    const months = [];
    for (let first = data.start; first <= data.end; first = addMonths(first, 1)) {
      const caption = monthTitle(first);
      const header = h('tr', null, t('weekdays').map((w, i) => h('th', {
        scope: 'col', abbr: t('weekdays_long')[i], class: i >= 5 ? 'weekend' : null, text: w,
      })));
      const rows = [];
      let cells = [];
      for (let i = 0; i < weekdayIndex(first); i++) cells.push(h('td', { class: 'pad' }));
      const last = monthEnd(first);
      for (let day = first; day <= last; day = addDays(day, 1)) {
        const info = byDate.get(day);
        cells.push(h('td', null, info ? dayButton(info, range, now) : h('span', { class: 'day', text: +day.slice(8) })));
        if (cells.length === 7) { rows.push(h('tr', null, cells)); cells = []; }
      }
      if (cells.length) {
        while (cells.length < 7) cells.push(h('td', { class: 'pad' }));
        rows.push(h('tr', null, cells));
      }
      months.push(h('figure', { class: 'month' },
        h('figcaption', { text: caption }),
        h('table', { class: 'month-grid', 'aria-label': caption },
          h('thead', null, header), h('tbody', null, rows))));
    }
    container.classList.toggle('has-range', !!range && state.view === 'range');
    container.replaceChildren(...months);
    renderDayDetail();
  }

  function dayButton(day, range, now) {
    const future = day.date > now;
    const classes = ['day', 's-' + day.state];
    if (future && day.state === 'not_synced') classes.push('future');
    if (range && day.date >= range.start && day.date <= range.end) classes.push('in-range');
    if (range && day.date === range.start) classes.push('range-start');
    if (range && day.date === range.end) classes.push('range-end');
    if (day.date === now) classes.push('today');
    if (state.selectedDay === day.date) classes.push('selected');
    const label = dateLabel(day);
    let mark = '';
    if (day.state === 'synced' && day.rows !== null) mark = fmtCompact(day.rows);
    else if (day.state === 'failed') mark = '!';
    else if (day.state === 'skipped') mark = '–';
    else if (day.state === 'running') mark = '…';
    return h('button', {
      type: 'button', class: classes.join(' '), title: label, 'aria-label': label,
      'data-date': day.date, 'data-state': day.state,
      'aria-pressed': state.selectedDay === day.date ? 'true' : 'false',
      onclick: () => selectDay(day.date),
    }, h('span', { class: 'num', text: +day.date.slice(8) }), mark ? h('span', { class: 'mark', text: mark }) : null);
  }

  function renderCalendarSummary(range, byDate) {
    const el = $('calendar-summary');
    if (!range) { el.textContent = t('calendar_hint'); return; }
    let synced = 0; let rows = 0; let gaps = 0; let failed = 0; let closed = 0;
    const now = today();
    for (let day = range.start; day <= range.end && day <= now; day = addDays(day, 1)) {
      const d = byDate.get(day);
      if (!d) continue;
      if (d.state === 'synced') { synced++; rows += d.rows || 0; }
      else if (d.state === 'failed') failed++;
      else if (d.state === 'non_trading') closed++;
      else if (d.state === 'not_synced' && d.trading !== false) gaps++;
    }
    el.replaceChildren(
      h('span', { text: t('calendar_summary', { start: range.start, end: range.end, synced, rows: fmtInt(rows), gaps, failed, closed }) }),
      ' ', h('span', { class: 'muted', text: t('calendar_hint') }));
  }

  function selectDay(date) {
    state.selectedDay = state.selectedDay === date ? null : date;
    renderCalendar();
  }

  function renderDayDetail() {
    const box = $('day-detail');
    const day = state.selectedDay && state.dates && state.dates.dates.find((d) => d.date === state.selectedDay);
    if (!day) { show(box, false); return; }
    const setDate = (field, other) => () => {
      $(field).value = day.date;
      if (field === 'start-date' && $(other).value && $(other).value < day.date) $(other).value = day.date;
      if (field === 'end-date' && $(other).value && $(other).value > day.date) $(other).value = day.date;
      onRangeInput();
    };
    box.replaceChildren(
      h('span', { class: 'swatch s-' + day.state, 'aria-hidden': 'true' }),
      h('span', { class: 'detail-text', text: dateLabel(day) + (day.task_id ? ' · ' + t('tip_task', { task: day.task_id }) : '')
        + (day.synced_at ? ' · ' + t('tip_synced_at', { time: fmtTime(day.synced_at) }) : '') }),
      h('span', { class: 'detail-actions' },
        h('button', { type: 'button', class: 'ghost small', onclick: setDate('start-date', 'end-date'), text: t('set_start') }),
        h('button', { type: 'button', class: 'ghost small', onclick: setDate('end-date', 'start-date'), text: t('set_end') })));
    show(box, true);
  }

  function setView(view) {
    state.view = view;
    state.shift = 0;
    renderCalendar();
    loadCalendar();
  }

  // --- history ---------------------------------------------------------------

  async function loadHistory() {
    const answer = await callApi('GET', 'sync/batch/jobs');
    const box = $('history-error');
    if (!answer.ok) {
      box.textContent = answer.message;
      show(box, true);
      return null;
    }
    show(box, false);
    state.jobs = answer.data;
    renderHistory();
    return answer.data;
  }

  async function toggleDays(taskId) {
    if (state.openJobs.has(taskId)) {
      state.openJobs.delete(taskId);
      renderHistory();
      return;
    }
    state.openJobs.set(taskId, null);
    renderHistory();
    const answer = await callApi('GET', 'sync/batch/days/' + encodeURIComponent(taskId));
    if (!state.openJobs.has(taskId)) return;
    state.openJobs.set(taskId, answer.ok ? answer.data : { error: answer.message });
    renderHistory();
  }

  function renderHistory() {
    const body = $('history-body');
    const jobs = state.jobs;
    show($('history-empty'), !!jobs && jobs.length === 0);
    if (!jobs) return;
    const rows = [];
    jobs.forEach((job, index) => {
      const b = statusBadge(job.status, job.failed);
      const open = state.openJobs.has(job.task_id);
      const daysId = 'days-' + index;
      const duration = job.finished_at
        ? fmtDuration((new Date(job.finished_at) - new Date(job.created_at)) / 1000) : t('in_progress');
      rows.push(h('tr', { class: 'job-row', 'data-task-id': job.task_id },
        h('td', null, h('span', { class: 'range', text: `${job.start_date} → ${job.end_date}` }),
          job.force ? h('span', { class: 'tag', text: t('forced') }) : null,
          h('div', { class: 'task muted', text: job.task_id })),
        h('td', null, h('span', { class: 'badge ' + b.cls, text: b.text })),
        h('td', { class: 'outcome' },
          h('span', { class: 'n-ok', text: `${t('stat_success')} ${job.success}` }), ' · ',
          h('span', { class: job.failed ? 'n-bad' : '', text: `${t('stat_failed')} ${job.failed}` }), ' · ',
          h('span', { class: 'n-skip', text: `${t('stat_skipped')} ${job.skipped}` })),
        h('td', { class: 'num', text: fmtInt(job.rows) }),
        h('td', { text: fmtTime(job.created_at) }),
        h('td', { class: 'num', text: duration }),
        h('td', { class: 'row-actions' },
          job.status === 'running' && (!state.watch || state.watch.taskId !== job.task_id)
            ? h('button', { type: 'button', class: 'ghost small', text: t('watch_job'), onclick: () => watch(job.task_id) }) : null,
          h('button', {
            type: 'button', class: 'ghost small', 'aria-expanded': String(open), 'aria-controls': daysId,
            text: open ? t('hide_days') : t('show_days'), onclick: () => toggleDays(job.task_id),
          }))));
      if (open) rows.push(h('tr', { class: 'days-row', id: daysId }, h('td', { colspan: 7 }, daysTable(state.openJobs.get(job.task_id)))));
    });
    body.replaceChildren(...rows);
  }

  function daysTable(days) {
    if (days === null) return h('p', { class: 'muted', text: t('days_loading') });
    if (days.error) return h('p', { class: 'notice error', text: days.error });
    return h('table', { class: 'days' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col', text: t('days_date') }), h('th', { scope: 'col', text: t('days_status') }),
        h('th', { scope: 'col', text: t('days_detail') }), h('th', { scope: 'col', class: 'num', text: t('days_attempts') }),
        h('th', { scope: 'col', class: 'num', text: t('days_rows') }))),
      h('tbody', null, days.map((d) => h('tr', { class: 'd-' + d.status },
        h('td', { text: d.day }),
        h('td', null, h('span', { class: 'dot s-' + dayState(d), 'aria-hidden': 'true' }), ' ', t('day_' + d.status) || d.status),
        h('td', { class: 'detail', text: [d.skip_reason ? reasonText(d.skip_reason) : '', d.error || ''].filter(Boolean).join(' · ') }),
        h('td', { class: 'num', text: d.attempts }),
        h('td', { class: 'num', text: d.rows_written ? fmtInt(d.rows_written) : '—' })))));
  }

  function dayState(d) {
    if (d.status === 'success') return 'synced';
    if (d.status === 'skipped' && d.skip_reason === 'non_trading_day') return 'non_trading';
    return d.status;
  }

  // --- start -----------------------------------------------------------------

  async function main() {
    state.apiBase = resolveApiBase();
    state.lang = initialLang();
    const end = beijingToday();
    $('start-date').value = addDays(end, -(DEFAULT_RANGE_DAYS - 1));
    $('end-date').value = end;
    $('start-date').max = end;
    $('end-date').max = end;
    applyStaticText();
    renderAll();

    $('sync-form').addEventListener('submit', onSubmit);
    for (const id of ['start-date', 'end-date']) $(id).addEventListener('change', onRangeInput);
    $('lang-toggle').addEventListener('click', () => setLang(state.lang === 'en' ? 'zh' : 'en'));
    $('cancel-button').addEventListener('click', onCancel);
    $('resume-button').addEventListener('click', () => state.watch && watch(state.watch.taskId));
    $('view-range').addEventListener('click', () => setView('range'));
    $('view-recent').addEventListener('click', () => setView('recent'));
    $('cal-prev').addEventListener('click', () => { state.shift -= 1; loadCalendar(); });
    $('cal-next').addEventListener('click', () => { state.shift += 1; loadCalendar(); });
    $('history-refresh').addEventListener('click', loadHistory);

    loadCalendar();
    const jobs = await loadHistory();
    // A job already running (started elsewhere, or before a reload): watch it.
    if (jobs && jobs.length && jobs[0].status === 'running' && !state.watch) watch(jobs[0].task_id);
  }

  document.addEventListener('DOMContentLoaded', main);
}());
