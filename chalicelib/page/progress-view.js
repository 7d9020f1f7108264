/* The watched job, drawn: the conflict notice, the bar, the counts and times, the line under
 * the bar, the summary (skips.js: why days were skipped) and which of the progress card's
 * buttons show. progress.js decides what the job is; this draws it, in place, so a redraw
 * never takes the focus away.
 */
import { $, h, setAttr, setText, show } from './dom.js';
import { fmtDuration, fmtInt, t } from './i18n.js';
import { renderSkips } from './skips.js';

export const ENDED = ['completed', 'cancelled'];
export const ACTIVE = ['running', 'paused'];

/** The summary's first words, as the end of a job is announced too. */
export function summaryText(p) {
  const counts = { success: p.success, failed: p.failed, skipped: p.skipped };
  return t(p.status === 'cancelled' ? 'summary_cancelled' : 'summary_completed', counts) + ' '
    + t('summary_rows', { rows: fmtInt(p.rows), elapsed: fmtDuration(p.elapsed_s) });
}

function statusBadge(status, failed) {
  if (status === 'completed' && failed > 0) return { text: t('status_completed_failures'), cls: 'warn' };
  const cls = { running: 'running', paused: 'paused', completed: 'ok', cancelled: 'muted' }[status] || 'muted';
  return { text: t('status_' + status) || status, cls };
}

/** `view`: {job, progress, conflict (true, or the refused-for job's status), timedOut, notice}. */
export function renderView({ job, progress: p, conflict, timedOut, notice: noticeText }) {
  show($('progress-empty'), !job);
  show($('progress-view'), !!job);
  const badge = $('job-status');
  if (!job) { show(badge, false); return; }

  const notice = $('conflict-notice');
  const pausedJob = p ? p.status === 'paused' : conflict === 'paused';
  const words = pausedJob ? [t('job_paused'), t('conflict_suffix_paused')] : [t('job_running'), t('conflict_suffix')];
  if (notice.dataset.lang !== words.join('|')) {
    notice.dataset.lang = words.join('|');
    notice.replaceChildren(h('strong', { text: words[0] }), h('span', { class: 'block', text: words[1] }));
  }
  show(notice, !!conflict && (!p || ACTIVE.includes(p.status)));

  setText($('task-id'), job.taskId);
  setText($('task-range'), p ? `${p.start_date} → ${p.end_date}${p.force ? ' · ' + t('forced') : ''}` : '');

  const percent = p ? p.percent : 0;
  const bar = $('progress-bar');
  setAttr(bar, 'aria-valuenow', percent);
  setAttr(bar, 'aria-label', t('progress_label', { percent }));
  bar.classList.toggle('done', !!p && ENDED.includes(p.status));
  bar.classList.toggle('paused', !!p && p.status === 'paused');
  bar.classList.toggle('has-failures', !!p && p.failed > 0);
  $('progress-fill').style.width = percent + '%';
  setText($('percent'), percent + '%');

  if (p) {
    const b = statusBadge(p.status, p.failed);
    setText(badge, b.text);
    badge.className = 'badge ' + b.cls;
  }
  show(badge, !!p);

  const active = !!p && ACTIVE.includes(p.status);
  let line = '';
  if (p && p.status === 'running') {
    line = p.current === 0 || !p.current_date ? t('line_starting', { total: p.total })
      : t('line_running', { date: p.current_date });
  } else if (p && pausedJob) {
    line = t('line_paused', { current: p.current, total: p.total });
  }
  setText($('progress-line'), line);
  setText($('stat-current'), p && p.current_date ? p.current_date : '—');
  setText($('stat-done'), p ? `${p.current} / ${p.total}` : '—');
  setText($('stat-success'), p ? fmtInt(p.success) : '0');
  setText($('stat-failed'), p ? fmtInt(p.failed) : '0');
  setText($('stat-skipped'), p ? fmtInt(p.skipped) : '0');
  setText($('stat-rows'), p ? fmtInt(p.rows) : '0');
  setText($('stat-elapsed'), p ? fmtDuration(p.elapsed_s) : '—');
  setText($('stat-eta'), etaText(p));

  renderSummary(p, active);
  renderSkips(p, active);

  setText($('poll-notice'), noticeText);
  show($('poll-notice'), !!noticeText);
  show($('cancel-button'), active && !timedOut);
  show($('resume-button'), active && timedOut);
}

/** The API's own estimate (this run's rate, paused time left out); an older API's: ours. */
function etaText(p) {
  if (!p || ENDED.includes(p.status)) return '—';
  if (p.status === 'paused') return t('eta_paused');
  if (p.eta_s === undefined) {
    return p.current > 0 ? fmtDuration((p.elapsed_s / p.current) * (p.total - p.current)) : t('eta_pending');
  }
  return p.eta_s === null ? t('eta_pending') : fmtDuration(p.eta_s);
}

function renderSummary(p, active) {
  const summary = $('summary');
  if (!p || active) { show(summary, false); return; }
  const counts = { success: p.success, failed: p.failed, skipped: p.skipped };
  const key = [p.status, p.success, p.failed, p.skipped, p.rows, p.elapsed_s, t('summary_rows')].join('|');
  if (summary.dataset.key !== key) {
    summary.dataset.key = key;
    const hint = t('summary_failed_hint', { failed: p.failed }) + ' ' + t('summary_retry_hint');
    summary.replaceChildren(
      h('strong', { text: t(p.status === 'cancelled' ? 'summary_cancelled' : 'summary_completed', counts) }),
      h('span', { text: ' ' + t('summary_rows', { rows: fmtInt(p.rows), elapsed: fmtDuration(p.elapsed_s) }) }),
      ...(p.failed > 0 ? [h('span', { class: 'block', text: hint })] : []));
  }
  summary.className = 'notice ' + (p.status === 'cancelled' ? 'muted' : p.failed > 0 ? 'warn' : 'ok');
  show(summary, true);
}
