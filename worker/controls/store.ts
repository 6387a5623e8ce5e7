/**
 * Where the worker keeps the owner's choices across reloads: the rules, whether the owner
 * wants this device to contribute (so a reloaded or restored tab resumes by itself), and a
 * remote pause (it lasts until the fleet owner resumes). IndexedDB in the worker, so the rules
 * are there before the page has drawn anything.
 */
import { IdbStore } from '../storage/idb.ts';
import { DEFAULT_CONTROLS, parseControls, type Controls } from './rules.ts';

export interface SavedControls {
  controls: Controls;
  /** Set by Start, cleared by an explicit Stop: a reload resumes when true. */
  contributing: boolean;
  remotePaused: boolean;
}

export const DEFAULT_SAVED: SavedControls = { controls: DEFAULT_CONTROLS, contributing: false, remotePaused: false };

export interface ControlsStore {
  load(): Promise<SavedControls>;
  save(saved: SavedControls): Promise<void>;
}

/** Reads what was saved, falling back field by field to the defaults (a newer or older shape, or damage). */
export function readSaved(value: unknown): SavedControls {
  if (typeof value !== 'object' || value === null) return DEFAULT_SAVED;
  const record = value as Partial<Record<keyof SavedControls, unknown>>;
  let controls = DEFAULT_CONTROLS;
  try {
    controls = parseControls(record.controls);
  } catch {
    // Rules saved by another version that no longer parse: start from the defaults rather than not at all.
  }
  return { controls, contributing: record.contributing === true, remotePaused: record.remotePaused === true };
}

export class MemoryControlsStore implements ControlsStore {
  saved: SavedControls = DEFAULT_SAVED;

  async load(): Promise<SavedControls> {
    return readSaved(structuredClone(this.saved));
  }

  async save(saved: SavedControls): Promise<void> {
    this.saved = structuredClone(saved);
  }
}

const STORE = 'controls';
const RECORD = 'current';

export class IndexedDbControlsStore implements ControlsStore {
  readonly #db: IdbStore;

  constructor(options: { indexedDB?: IDBFactory; databaseName?: string } = {}) {
    this.#db = new IdbStore({ ...options, databaseName: options.databaseName ?? 'spinneret-controls', store: STORE });
  }

  async load(): Promise<SavedControls> {
    return readSaved(await this.#db.get(RECORD, 'read the contributor controls'));
  }

  save(saved: SavedControls): Promise<void> {
    return this.#db.write('save the contributor controls', (store) => {
      store.put(saved, RECORD);
      return () => undefined;
    });
  }
}
