/**
 * The "Controls" card: the owner's rules for when this device works (pause, GPU duty cycle,
 * battery, idle, schedule, job kinds, size caps, keep-alive), saved by the worker and applied
 * by its job loop at once, and why the device is paused now. Also resumes contributing after
 * a reload when the owner had started and not stopped.
 */
import { proxy } from 'comlink';
import type { JobKind } from '../protocol/manifest.ts';
import type { Controls, TimeWindow } from '../worker/controls/rules.ts';
import type { ContributorStatus } from '../worker/network/contributor.ts';
import { idleStatus } from '../worker/network/status.ts';
import type { WorkerBridge } from './bridge.ts';
import { h, replace, tr } from './dom.ts';
import { formatNumber } from './i18n/index.ts';
import { startSignals, type SignalsFeed } from './signals.ts';

const KINDS: JobKind[] = ['chat', 'generate', 'embed', 'infer'];
const DUTY: Controls['dutyCycle'][] = [100, 75, 50, 25];

export interface ControlsCardOptions {
  coordinatorUrl: string | null;
  onError: (err: unknown) => void;
  /** The wallet session token to send in the hello when contributing resumes, if a wallet is proven. */
  walletSession?: () => string | undefined;
  /** Resume only after this settles (the wallet card restoring its session). */
  resumeAfter?: Promise<unknown>;
}

/** `22:00-07:00, 12:00–13:00` → windows; null when the text is not such a list. Empty text: no schedule. */
export function parseSchedule(text: string): TimeWindow[] | null {
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const windows: TimeWindow[] = [];
  for (const part of parts) {
    const match = /^(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})$/.exec(part);
    if (match === null) return null;
    const [, h1 = '', m1 = '', h2 = '', m2 = ''] = match;
    windows.push({ start: `${h1.padStart(2, '0')}:${m1}`, end: `${h2.padStart(2, '0')}:${m2}` });
  }
  return windows;
}

export function formatSchedule(windows: readonly TimeWindow[]): string {
  return windows.map((w) => `${w.start}-${w.end}`).join(', ');
}

export interface ControlsCard {
  signals: SignalsFeed;
}

export async function mountControls(box: HTMLElement, bridge: WorkerBridge, options: ControlsCardOptions): Promise<ControlsCard> {
  const { api } = bridge;
  const signalsLine = h('p', { testid: 'controls-signals', class: 'note' });
  const signals = startSignals(
    (update) => void api.setSignals(update).catch(options.onError),
    (s) => {
      box.dataset['visibility'] = s.visibility;
      replace(
        signalsLine,
        tr(`controls.signal_${s.visibility}`),
        ' · ',
        s.battery === null
          ? tr('controls.signalNoBattery')
          : tr(s.battery.charging ? 'controls.signalCharging' : 'controls.signalDischarging', { level: Math.round(s.battery.level * 100) }),
        ' · ',
        tr(`controls.idle_${s.idle}`),
      );
    },
  );
  let controls = await api.controls();
  const saved = h('p', { testid: 'controls-saved', class: 'note', 'aria-live': 'polite' });
  const save = (update: Partial<Controls>): void => {
    api.setControls(update).then(
      (c) => {
        controls = c;
        sync();
        replace(saved, tr('controls.saved'));
      },
      (err: unknown) => {
        replace(saved);
        options.onError(err);
      },
    );
  };

  const field = (id: string, label: string, input: HTMLElement, help?: string): HTMLElement =>
    h('p', {}, h('label', { for: id }, tr(label)), ' ', input, help === undefined ? null : h('span', { class: 'note' }, ' ', tr(help)));
  const check = (id: string, onChange: (on: boolean) => void): HTMLInputElement => {
    const box = h('input', { type: 'checkbox', id, testid: id });
    box.addEventListener('change', () => onChange(box.checked));
    return box;
  };
  const number = (id: string, min: number, max: number, onChange: (value: number | null) => void): HTMLInputElement => {
    const input = h('input', { type: 'number', id, testid: id, min, max, step: 1, inputmode: 'numeric' });
    input.addEventListener('change', () => onChange(input.value.trim() === '' ? null : Math.round(Number(input.value))));
    return input;
  };

  const pause = h('button', { type: 'button', testid: 'controls-pause' });
  pause.addEventListener('click', () => save({ paused: !controls.paused }));
  const duty = h('select', { id: 'controls-duty', testid: 'controls-duty' }, ...DUTY.map((d) => h('option', { value: d }, `${d}%`)));
  duty.addEventListener('change', () => save({ dutyCycle: Number(duty.value) as Controls['dutyCycle'] }));
  const onBattery = check('controls-battery', (on) => save({ pauseOnBattery: on }));
  const minBattery = number('controls-battery-min', 0, 100, (v) => save({ minBatteryPercent: v }));
  const idleOnly = check('controls-idle', (on) => save({ onlyWhenIdle: on }));
  const askIdle = h('button', { type: 'button', testid: 'controls-idle-ask' }, tr('controls.idleAsk'));
  askIdle.addEventListener('click', () => void signals.askIdle());
  const schedule = h('input', { type: 'text', id: 'controls-schedule', testid: 'controls-schedule', placeholder: '22:00-07:00' });
  const scheduleError = h('span', { testid: 'controls-schedule-error', class: 'error', role: 'alert' });
  schedule.addEventListener('change', () => {
    const windows = parseSchedule(schedule.value);
    replace(scheduleError, windows === null ? tr('controls.scheduleInvalid') : null);
    if (windows !== null) save({ schedule: windows });
  });
  const consent = KINDS.map((kind) => {
    const box = check(`controls-consent-${kind}`, () => save({ consent: KINDS.filter((_, i) => consent[i]?.checked === true) }));
    return box;
  });
  const maxDownload = number('controls-max-download', 1, 1 << 20, (v) => save({ maxDownloadMiB: v }));
  const maxVram = number('controls-max-vram', 1, 1 << 20, (v) => save({ maxVramMiB: v }));
  const keepAlive = check('controls-keepalive', (on) => save({ keepAlive: on }));

  /** Puts the saved rules into the inputs. */
  const sync = (): void => {
    box.dataset['paused'] = String(controls.paused);
    replace(pause, tr(controls.paused ? 'controls.resume' : 'controls.pause'));
    pause.setAttribute('aria-pressed', String(controls.paused));
    duty.value = String(controls.dutyCycle);
    onBattery.checked = controls.pauseOnBattery;
    minBattery.value = controls.minBatteryPercent === null ? '' : String(controls.minBatteryPercent);
    idleOnly.checked = controls.onlyWhenIdle;
    if (document.activeElement !== schedule) schedule.value = formatSchedule(controls.schedule);
    KINDS.forEach((kind, i) => {
      const box = consent[i];
      if (box !== undefined) box.checked = controls.consent.includes(kind);
    });
    maxDownload.value = controls.maxDownloadMiB === null ? '' : String(controls.maxDownloadMiB);
    maxVram.value = controls.maxVramMiB === null ? '' : String(controls.maxVramMiB);
    keepAlive.checked = controls.keepAlive;
    const supported = signals.keepAlive(controls.keepAlive);
    replace(keepAliveNote, controls.keepAlive && !supported ? tr('controls.keepAliveUnsupported') : null);
  };
  const keepAliveNote = h('span', { class: 'note', testid: 'controls-keepalive-note' });

  const why = h('p', { testid: 'controls-why', role: 'status' });
  const unusable = h('ul', { testid: 'controls-unusable', class: 'note' });
  const message = h('p', { testid: 'controls-owner-message', class: 'note' });
  const pace = h('p', { testid: 'controls-pace', class: 'note' });
  const device = h('p', { testid: 'controls-device', class: 'note' });
  const render = (s: ContributorStatus): void => {
    box.dataset['pausedBy'] = s.pausedBy ?? '';
    box.dataset['state'] = s.state;
    replace(
      why,
      s.state === 'idle'
        ? tr('controls.whyIdle')
        : s.pausedBy === null
          ? tr('controls.whyWorking')
          : tr(`controls.why_${s.pausedBy}`, s.resumeAt === null ? {} : { time: new Date(s.resumeAt).toLocaleTimeString() }),
    );
    replace(unusable, ...s.unusable.map((u) => h('li', { 'data-rule': u.rule }, tr(`controls.unusable_${u.rule}_${u.reason}`))));
    replace(message, s.ownerMessage === null ? null : tr('controls.ownerMessage', { text: s.ownerMessage.text }));
    if (s.ownerMessage !== null) message.dataset['text'] = s.ownerMessage.text;
    replace(
      pace,
      s.pace === undefined
        ? null
        : tr('controls.pace', {
            jobs: formatNumber(s.pace.jobsPerMinute, { maximumFractionDigits: 1 }),
            busy: formatNumber(s.pace.busyFraction, { style: 'percent' }),
          }),
    );
    if (s.pace !== undefined) pace.dataset['busy'] = String(s.pace.busyFraction);
    replace(
      device,
      s.device.losses === 0 ? null : tr('controls.deviceLosses', { count: s.device.losses, message: s.device.lastLoss?.message ?? '' }),
    );
  };

  replace(
    box,
    h('h2', { id: 'controls-h' }, tr('controls.title')),
    h('p', { class: 'note' }, tr('controls.intro')),
    why,
    unusable,
    message,
    h('p', {}, pause),
    field('controls-duty', 'controls.duty', duty, 'controls.dutyHelp'),
    h(
      'fieldset',
      {},
      h('legend', {}, tr('controls.batteryLegend')),
      field('controls-battery', 'controls.battery', onBattery),
      field('controls-battery-min', 'controls.batteryMin', minBattery, 'controls.batteryMinHelp'),
    ),
    h('fieldset', {}, h('legend', {}, tr('controls.idleLegend')), field('controls-idle', 'controls.idle', idleOnly), h('p', {}, askIdle)),
    field('controls-schedule', 'controls.schedule', schedule, 'controls.scheduleHelp'),
    scheduleError,
    h(
      'fieldset',
      {},
      h('legend', {}, tr('controls.consentLegend')),
      ...KINDS.map((kind, i) => h('p', {}, consent[i], ' ', h('label', { for: `controls-consent-${kind}` }, tr(`controls.kind_${kind}`)))),
    ),
    field('controls-max-download', 'controls.maxDownload', maxDownload, 'controls.capHelp'),
    field('controls-max-vram', 'controls.maxVram', maxVram, 'controls.capHelp'),
    h(
      'fieldset',
      {},
      h('legend', {}, tr('controls.keepAliveLegend')),
      field('controls-keepalive', 'controls.keepAlive', keepAlive),
      h('p', { class: 'note' }, tr('controls.keepAliveHelp')),
      keepAliveNote,
    ),
    saved,
    signalsLine,
    pace,
    device,
  );
  sync();

  const first = await api.watchContributor(proxy(render));
  if (first !== null) render(first);
  else render(idleStatus());
  const { coordinatorUrl } = options;
  if (coordinatorUrl !== null) {
    void (options.resumeAfter ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => {
        const session = options.walletSession?.();
        return api.resumeContributing({ coordinatorUrl, ...(session !== undefined && { session }) });
      })
      .catch(options.onError);
  }
  return { signals };
}
