/* Why the watched job skipped days, under its summary: `跳过原因：非交易日 8 天。`, and, when
 * every trading day of the range was synced already (so nothing was fetched), a pointer to
 * the form's "force" option with a button that ticks it.
 */
import { announce } from './announcer.js';
import { $, setText, show } from './dom.js';
import { reasonText, t } from './i18n.js';

export function initSkips() {
  $('use-force').addEventListener('click', () => {
    const force = $('force');
    force.checked = true;
    force.focus();
    announce(t('ann_force_checked'));
  });
}

/** Skips by reason, in words: `跳过原因：非交易日 8 天。` (empty when nothing was skipped). */
export function skipsText(p, prefix = '') {
  const reasons = Object.entries((p && p.skipped_by_reason) || {}).filter(([, n]) => n > 0);
  if (!reasons.length) return '';
  const items = reasons.map(([reason, n]) => t('summary_skip_item', { reason: reasonText(reason), n }));
  return prefix + t('summary_skips', { reasons: items.join(t('summary_sep')) });
}

/** Nothing fetched because every trading day was stored already: the force option would. */
function allAlreadySynced(p) {
  const r = p.skipped_by_reason || {};
  return p.status === 'completed' && !p.success && !p.failed && (r.already_synced || 0) > 0
    && (r.already_synced || 0) + (r.non_trading_day || 0) === p.skipped;
}

export function renderSkips(p, active) {
  const box = $('skip-summary');
  const text = !p || active ? '' : skipsText(p);
  setText($('skip-reasons'), text);
  const synced = !!p && !active && allAlreadySynced(p);
  setText($('force-hint'), synced ? t('summary_all_synced') : '');
  show($('force-hint'), synced);
  setText($('use-force'), t('use_force'));
  show($('use-force'), synced);
  show(box, !!text);
}

