/**
 * Settings: the owner's rules for when this device works (GPU duty cycle, battery, idle,
 * schedule, job kinds, size caps, keep-alive), saved by the worker and applied by its job loop at
 * once. Each field is checked as it is typed, says what is wrong beside itself in plain words
 * (the error clears when fixed) and shows its own "saved" mark. A value that is not valid is
 * never kept in hiding: the rule it replaces is switched off, and the error says so. Pausing is
 * the primary Stop button's job only. Also resumes contributing after a reload when the owner had
 * started and not stopped.
 */
import { proxy } from 'comlink';
import type { JobKind } from '../protocol/manifest.ts';
import type { Controls } from '../worker/controls/rules.ts';
import type { ContributorStatus } from '../worker/network/contributor.ts';
import type { WorkerBridge } from './bridge.ts';
import { h, replace, tr } from './dom.ts';
import { formatTime } from './i18n/format.ts';
import { formatNumber } from './i18n/index.ts';
import type { PageState, Store } from './page-state.ts';
import { type Checked, formatSchedule, parseSchedule } from './schedule.ts';
import { startSignals, type SignalsFeed } from './signals.ts';
import { idleStatus } from './status.ts';

const KINDS: JobKind[] = ['chat', 'generate', 'embed', 'infer'];
const DUTY: Controls['dutyCycle'][] = [100, 75, 50, 25];

export interface ControlsCardOptions {
  coordinatorUrl: string | null;
  store: Store<PageState>;
  onError: (err: unknown) => void;
  /** The wallet session token to send in the hello when contributing resumes, if a wallet is proven. */
  walletSession?: () => string | undefined;
  /** Resume only after this settles (the wallet restoring its session). */
  resumeAfter?: Promise<unknown>;
}

/** A whole number from `min` to `max`, or empty (null). */
export function parseWhole(text: string, min: number, max: number, error: string): Checked<number | null> {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: true, value: null };
  if (!/^\d+$/.test(trimmed)) return { ok: false, error };
  const value = Number(trimmed);
  return value >= min && value <= max ? { ok: true, value } : { ok: false, error };
}

export interface ControlsCard {
  signals: SignalsFeed;
}

interface Field {
  /** Shows the saved mark, or clears it. */
  saved(on: boolean): void;
  /** Shows what is wrong (a catalog key, plus what now applies), or clears it. */
  error(key: string | null, applies?: string): void;
}

export async function mountControls(box: HTMLElement, bridge: WorkerBridge, options: ControlsCardOptions): Promise<ControlsCard> {
  const { api } = bridge;
  const { store } = options;
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
  store.set({ controls });
  const fields = new Map<string, Field>();

  /** Saves a partial update and marks the field that made it; `invalid` keeps the field's error. */
  const save = (id: string, update: Partial<Controls>, invalid: { key: string; applies: string } | null = null): void => {
    const field = fields.get(id);
    field?.saved(false);
    api.setControls(update).then(
      (c) => {
        controls = c;
        store.set({ controls });
        sync(id);
        if (invalid === null) field?.saved(true);
      },
      (err: unknown) => {
        field?.error('controls.notSaved');
        options.onError(err);
      },
    );
  };

  /** A labelled field with its help under it, and its error and saved mark beside it. */
  const field = (id: string, label: string, input: HTMLElement, help: string | null, inline = false): HTMLElement => {
    const error = h('span', { id: `${id}-error`, testid: `${id}-error`, class: 'field-error error' });
    const saved = h('span', { testid: `${id}-saved`, class: 'saved', hidden: true }, '✓ ', tr('controls.saved'));
    const helpId = `${id}-help`;
    input.setAttribute('aria-describedby', `${help === null ? '' : `${helpId} `}${id}-error`);
    fields.set(id, {
      saved: (on) => (saved.hidden = !on),
      error: (key, applies) => {
        if (key === null) {
          input.removeAttribute('aria-invalid');
          replace(error);
          return;
        }
        input.setAttribute('aria-invalid', 'true');
        replace(error, tr(key), applies === undefined ? null : ' ', applies === undefined ? null : tr(applies));
      },
    });
    const labelEl = h('label', { for: id }, tr(label));
    return h(
      'div',
      { class: inline ? 'field field-check' : 'field', testid: `field-${id}` },
      inline ? h('div', { class: 'field-row' }, input, labelEl, saved) : h('div', { class: 'field-row' }, labelEl, input, saved),
      error,
      help === null ? null : h('p', { id: helpId, class: 'help' }, tr(help)),
    );
  };
  const check = (id: string, onChange: (on: boolean) => void): HTMLInputElement => {
    const input = h('input', { type: 'checkbox', id, testid: id });
    input.addEventListener('change', () => onChange(input.checked));
    return input;
  };
  /**
   * A text input checked on each keystroke (the error shows or clears at once) and saved when
   * left: a valid value replaces the rule; a wrong one switches the rule off (`off`), and says so.
   */
  const checked = <T>(
    id: string,
    attrs: Record<string, string | number>,
    parse: (text: string) => Checked<T>,
    toUpdate: (value: T) => Partial<Controls>,
    off: { update: Partial<Controls>; applies: string },
  ): HTMLInputElement => {
    const input = h('input', { id, testid: id, autocomplete: 'off', ...attrs });
    const validate = (): Checked<T> => {
      const result = parse(input.value);
      fields.get(id)?.error(result.ok ? null : result.error, result.ok ? undefined : off.applies);
      return result;
    };
    input.addEventListener('input', () => {
      fields.get(id)?.saved(false);
      validate();
    });
    input.addEventListener('change', () => {
      const result = validate();
      if (result.ok) save(id, toUpdate(result.value));
      else save(id, off.update, { key: result.error, applies: off.applies });
    });
    return input;
  };

  const duty = h('select', { id: 'controls-duty', testid: 'controls-duty' }, ...DUTY.map((d) => h('option', { value: d }, `${d}%`)));
  duty.addEventListener('change', () => save('controls-duty', { dutyCycle: Number(duty.value) as Controls['dutyCycle'] }));
  const onBattery = check('controls-battery', (on) => save('controls-battery', { pauseOnBattery: on }));
  const minBattery = checked(
    'controls-battery-min',
    { inputmode: 'numeric', size: 4, placeholder: '20' },
    (text) => parseWhole(text, 0, 100, 'controls.batteryMinInvalid'),
    (value) => ({ minBatteryPercent: value }),
    { update: { minBatteryPercent: null }, applies: 'controls.batteryMinOff' },
  );
  const idleOnly = check('controls-idle', (on) => save('controls-idle', { onlyWhenIdle: on }));
  const askIdle = h('button', { type: 'button', testid: 'controls-idle-ask', class: 'small' }, tr('controls.idleAsk'));
  askIdle.addEventListener('click', () => void signals.askIdle());
  const schedule = checked(
    'controls-schedule',
    { type: 'text', placeholder: '22:00-07:00', size: 18 },
    parseSchedule,
    (value) => ({ schedule: value }),
    { update: { schedule: [] }, applies: 'controls.scheduleOff' },
  );
  const consent = KINDS.map((kind) =>
    check(`controls-consent-${kind}`, () =>
      save(`controls-consent-${kind}`, { consent: KINDS.filter((_, i) => consent[i]?.checked === true) }),
    ),
  );
  const maxDownload = checked(
    'controls-max-download',
    { inputmode: 'numeric', size: 7, placeholder: '2048' },
    (text) => parseWhole(text, 1, 1 << 20, 'controls.capInvalid'),
    (value) => ({ maxDownloadMiB: value }),
    { update: { maxDownloadMiB: null }, applies: 'controls.capOff' },
  );
  const maxVram = checked(
    'controls-max-vram',
    { inputmode: 'numeric', size: 7, placeholder: '4096' },
    (text) => parseWhole(text, 1, 1 << 20, 'controls.capInvalid'),
    (value) => ({ maxVramMiB: value }),
    { update: { maxVramMiB: null }, applies: 'controls.capOff' },
  );
  const keepAlive = check('controls-keepalive', (on) => save('controls-keepalive', { keepAlive: on }));
  const keepAliveNote = h('p', { class: 'note', testid: 'controls-keepalive-note' });

  /** Puts the saved rules into the inputs, except the one being typed in and one showing an error. */
  const sync = (skip?: string): void => {
    box.dataset['paused'] = String(controls.paused);
    duty.value = String(controls.dutyCycle);
    onBattery.checked = controls.pauseOnBattery;
    const keep = (input: HTMLInputElement): boolean =>
      input.id === skip || document.activeElement === input || input.getAttribute('aria-invalid') === 'true';
    if (!keep(minBattery)) minBattery.value = controls.minBatteryPercent === null ? '' : String(controls.minBatteryPercent);
    idleOnly.checked = controls.onlyWhenIdle;
    if (!keep(schedule)) schedule.value = formatSchedule(controls.schedule);
    KINDS.forEach((kind, i) => {
      const input = consent[i];
      if (input !== undefined) input.checked = controls.consent.includes(kind);
    });
    consentNote.hidden = controls.consent.length > 0;
    if (!keep(maxDownload)) maxDownload.value = controls.maxDownloadMiB === null ? '' : String(controls.maxDownloadMiB);
    if (!keep(maxVram)) maxVram.value = controls.maxVramMiB === null ? '' : String(controls.maxVramMiB);
    keepAlive.checked = controls.keepAlive;
    const supported = signals.keepAlive(controls.keepAlive);
    replace(keepAliveNote, controls.keepAlive && !supported ? tr('controls.keepAliveUnsupported') : null);
  };
  const consentNote = h('p', { class: 'note', testid: 'controls-consent-none', hidden: true }, tr('controls.consentNone'));

  const why = h('p', { testid: 'controls-why' });
  const unusable = h('ul', { testid: 'controls-unusable', class: 'note plain' });
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
          : tr(`controls.why_${s.pausedBy}`, s.resumeAt === null ? {} : { time: formatTime(s.resumeAt) }),
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
    const retired = s.device.retired ?? null;
    device.classList.toggle('error', retired !== null);
    if (retired !== null) device.dataset['retired'] = String(retired.wasmModels);
    replace(
      device,
      retired !== null
        ? tr(retired.wasmModels === 0 ? 'controls.gpuRetired' : 'controls.gpuRetiredWasm')
        : s.device.losses === 0
          ? null
          : tr('controls.deviceLosses', { count: s.device.losses, message: s.device.lastLoss?.message ?? '' }),
    );
  };

  replace(
    box,
    h('p', { class: 'note' }, tr('controls.intro')),
    why,
    unusable,
    message,
    field('controls-duty', 'controls.duty', duty, 'controls.dutyHelp'),
    h(
      'fieldset',
      {},
      h('legend', {}, tr('controls.batteryLegend')),
      field('controls-battery', 'controls.battery', onBattery, null, true),
      field('controls-battery-min', 'controls.batteryMin', minBattery, 'controls.batteryMinHelp'),
    ),
    h(
      'fieldset',
      {},
      h('legend', {}, tr('controls.idleLegend')),
      field('controls-idle', 'controls.idle', idleOnly, 'controls.idleHelp', true),
      h('p', {}, askIdle),
    ),
    field('controls-schedule', 'controls.schedule', schedule, 'controls.scheduleHelp'),
    h(
      'fieldset',
      {},
      h('legend', {}, tr('controls.consentLegend')),
      ...KINDS.map((kind, i) => field(`controls-consent-${kind}`, `controls.kind_${kind}`, consent[i] ?? h('input'), null, true)),
      consentNote,
    ),
    field('controls-max-download', 'controls.maxDownload', maxDownload, 'controls.maxDownloadHelp'),
    field('controls-max-vram', 'controls.maxVram', maxVram, 'controls.capHelp'),
    h(
      'fieldset',
      {},
      h('legend', {}, tr('controls.keepAliveLegend')),
      field('controls-keepalive', 'controls.keepAlive', keepAlive, 'controls.keepAliveHelp', true),
      keepAliveNote,
    ),
    signalsLine,
    pace,
    device,
  );
  sync();

  const first = await api.watchContributor(proxy(render));
  render(first ?? idleStatus());
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
