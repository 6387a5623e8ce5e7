/**
 * The first answer of the status band, "is it working?": a settled state word (the page's one
 * live region, so a screen reader hears each real change once) and a steady line under it, such
 * as "last job 3 seconds ago · 19 jobs in 10 min". The tab's title and favicon follow the word.
 */
import type { PauseRule } from '../protocol/wire.ts';
import type { ContributorStatus } from '../worker/network/status.ts';
import { h, replace, tr } from './dom.ts';
import { formatAgo, formatIn, formatTime } from './i18n/format.ts';
import { onLanguage, t, tp } from './i18n/index.ts';
import type { History } from './history.ts';
import type { PageState, Store } from './page-state.ts';
import { faviconFor, idleStatus, sameSettled, settle, SHOWN_COLOUR, type Settled } from './status.ts';

/** The words for each rule that can pause this device. */
export const RULE_KEYS: Record<PauseRule, string> = {
  user: 'contrib.ruleUser',
  remote: 'contrib.ruleRemote',
  'duty-cycle': 'contrib.ruleDutyCycle',
  battery: 'contrib.ruleBattery',
  idle: 'contrib.ruleIdle',
  schedule: 'contrib.ruleSchedule',
  consent: 'contrib.ruleConsent',
  device: 'contrib.ruleDevice',
};

/** The line under the state word, in the current language. */
export function subLine(settled: Settled, s: ContributorStatus | null, history: History, now: number): string {
  const jobs = tp('contrib.jobsIn10', history.jobsSince(now - 10 * 60_000));
  const last = s?.lastJobAt ?? null;
  switch (settled.shown) {
    case 'off':
      return t('contrib.sub_off');
    case 'starting':
      return t('contrib.sub_starting');
    case 'working':
      if (s !== null && s.loading.length > 0) return t('contrib.sub_loading', { model: s.loading.join(', ') });
      return last === null ? t('contrib.sub_first') : t('contrib.sub_working', { ago: formatAgo(last, now), jobs });
    case 'waiting':
      return last === null ? t('contrib.sub_waiting') : t('contrib.sub_waitingSince', { ago: formatAgo(last, now), jobs });
    case 'paused': {
      const rule = t(RULE_KEYS[settled.rule ?? 'user']);
      return s?.resumeAt != null ? t('contrib.sub_pausedUntil', { rule, time: formatTime(s.resumeAt) }) : t('contrib.sub_paused', { rule });
    }
    case 'trouble':
      if (s?.nextAttemptAt != null)
        return t('contrib.sub_retrying', { when: formatIn(s.nextAttemptAt, now), attempt: s.reconnectAttempts });
      return t('contrib.sub_trouble', { message: s?.lastError ?? '' });
  }
}

export function mountStateAnswer(box: HTMLElement, store: Store<PageState>, history: History): void {
  const dot = h('span', { class: 'dot', 'aria-hidden': 'true' });
  const word = h('span', {});
  const live = h('p', { class: 'big state', testid: 'contrib-state', role: 'status' }, dot, word);
  const sub = h('p', { class: 'sub', testid: 'contrib-help' });
  replace(box, h('p', { class: 'label' }, tr('contrib.askWorking')), live, sub);
  let settled: Settled | null = null;
  const favicon = document.querySelector<HTMLLinkElement>('link[rel="icon"]');
  const title = (): void => {
    const shown = settled?.shown ?? 'off';
    document.title = shown === 'off' ? t('app.documentTitle') : t('app.documentTitleState', { state: t(`contrib.shown_${shown}`) });
  };
  const draw = (state: Readonly<PageState>): void => {
    const next = settle(settled, state.status ?? idleStatus(), state.now);
    if (!sameSettled(settled, next)) {
      settled = next;
      // The live region changes only here: once per real change of state.
      replace(word, tr(`contrib.shown_${next.shown}`));
      box.dataset['shown'] = next.shown;
      dot.style.background = SHOWN_COLOUR[next.shown] ?? 'transparent';
      if (favicon !== null) favicon.href = faviconFor(next.shown);
      title();
    }
    replace(sub, subLine(next, state.status, history, Math.max(state.now, Date.now())));
  };
  store.subscribe(draw);
  onLanguage(() => {
    title();
    draw(store.get());
  });
}
