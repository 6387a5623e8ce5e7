/** One line of the owner's rules in effect, under the primary button, with a link to change them. */
import type { Controls } from '../worker/controls/rules.ts';
import { h, replace, tr } from './dom.ts';
import { formatBytes } from './i18n/format.ts';
import { onLanguage, t } from './i18n/index.ts';
import type { PageState, Store } from './page-state.ts';

const ALL_KINDS = 4;
const MIB = 1024 * 1024;

/** The rules in words, in the current language. */
export function rulesInWords(c: Controls): string {
  const parts = [c.dutyCycle === 100 ? t('controls.rule_dutyFull') : t('controls.rule_duty', { duty: c.dutyCycle })];
  parts.push(
    c.schedule.length === 0
      ? t('controls.rule_anyTime')
      : t('controls.rule_schedule', { windows: c.schedule.map((w) => `${w.start}–${w.end}`).join(', ') }),
  );
  if (c.pauseOnBattery) parts.push(t('controls.rule_notOnBattery'));
  if (c.minBatteryPercent !== null) parts.push(t('controls.rule_batteryMin', { level: c.minBatteryPercent }));
  if (c.onlyWhenIdle) parts.push(t('controls.rule_idle'));
  parts.push(
    c.consent.length === ALL_KINDS
      ? t('controls.rule_allKinds')
      : c.consent.length === 0
        ? t('controls.rule_noKinds')
        : t('controls.rule_kinds', { kinds: c.consent.map((k) => t(`controls.kind_${k}`)).join(', ') }),
  );
  if (c.maxDownloadMiB !== null) parts.push(t('controls.rule_maxDownload', { size: formatBytes(c.maxDownloadMiB * MIB) }));
  if (c.maxVramMiB !== null) parts.push(t('controls.rule_maxVram', { size: formatBytes(c.maxVramMiB * MIB) }));
  if (c.keepAlive) parts.push(t('controls.rule_keepAlive'));
  return parts.join(' · ');
}

export function mountRulesLine(box: HTMLElement, store: Store<PageState>, openSettings: () => void): void {
  const words = h('span', { testid: 'rules-words' });
  const change = h('a', { href: '#settings', testid: 'rules-change' }, tr('controls.rulesChange'));
  change.addEventListener('click', (event) => {
    event.preventDefault();
    openSettings();
  });
  replace(box, h('span', { class: 'label-inline' }, tr('controls.rulesInEffect')), ' ', words, ' ', change);
  const draw = (state: Readonly<PageState>): void => replace(words, state.controls === null ? '…' : rulesInWords(state.controls));
  store.subscribe(draw);
  onLanguage(() => draw(store.get()));
}
