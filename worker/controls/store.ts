/**
 * Where the worker keeps the owner's choices across reloads: the rules, whether the owner
 * wants this device to contribute (so a reloaded or restored tab resumes by itself), and a
 * remote pause (it lasts until the fleet owner resumes). IndexedDB in the worker, so the rules
 * are there before the page has drawn anything.
 */
import { StorageError } from '../../protocol/errors.ts';
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
  readonly #factory: IDBFactory;
  readonly #name: string;
  #db: Promise<IDBDatabase> | null = null;

  constructor(options: { indexedDB?: IDBFactory; databaseName?: string } = {}) {
    this.#factory = options.indexedDB ?? indexedDB;
    this.#name = options.databaseName ?? 'spinneret-controls';
  }

  async load(): Promise<SavedControls> {
    const db = await this.#open();
    return readSaved(await settle(db.transaction(STORE, 'readonly').objectStore(STORE).get(RECORD), 'read the contributor controls'));
  }

  async save(saved: SavedControls): Promise<void> {
    const db = await this.#open();
    await new Promise<void>((resolve, reject) => {
      const tx = db.transaction(STORE, 'readwrite');
      tx.objectStore(STORE).put(saved, RECORD);
      tx.oncomplete = () => resolve();
      tx.onabort = tx.onerror = () => reject(storageError('save the contributor controls', tx.error));
    });
  }

  #open(): Promise<IDBDatabase> {
    if (this.#db === null) {
      const request = this.#factory.open(this.#name, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE);
      this.#db = settle(request, 'open the controls database');
      this.#db.catch(() => (this.#db = null));
    }
    return this.#db;
  }
}

function settle<T>(request: IDBRequest<T>, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(storageError(what, request.error));
  });
}

function storageError(what: string, cause: DOMException | null): StorageError {
  return new StorageError(
    `Could not ${what} in IndexedDB (${cause?.message ?? 'unknown error'}). Allow site storage for this page, or leave private browsing, and reload.`,
  );
}
