/**
 * One IndexedDB database holding one object store, opened on first use (and again after a
 * failed open). Failures become a StorageError that says what could not be done and how to fix it.
 */
import { StorageError } from '../../protocol/errors.ts';

export class IdbStore {
  readonly #factory: IDBFactory;
  readonly #name: string;
  readonly #store: string;
  #db: Promise<IDBDatabase> | null = null;

  constructor(options: { indexedDB?: IDBFactory; databaseName: string; store: string }) {
    this.#factory = options.indexedDB ?? indexedDB;
    this.#name = options.databaseName;
    this.#store = options.store;
  }

  /** The record under `key`, or undefined; `what` names the reading in errors ("read the device keys"). */
  async get(key: string, what: string): Promise<unknown> {
    const db = await this.#open();
    return settle(db.transaction(this.#store, 'readonly').objectStore(this.#store).get(key), what);
  }

  /**
   * Runs `body` in one read-write transaction and, once it commits, resolves with what the
   * function `body` returned gives then (so reads inside the transaction can decide the answer).
   */
  async write<T>(what: string, body: (store: IDBObjectStore) => () => T): Promise<T> {
    const db = await this.#open();
    return new Promise<T>((resolve, reject) => {
      const tx = db.transaction(this.#store, 'readwrite');
      const result = body(tx.objectStore(this.#store));
      tx.oncomplete = () => resolve(result());
      tx.onabort = tx.onerror = () => reject(storageError(what, tx.error));
    });
  }

  #open(): Promise<IDBDatabase> {
    if (this.#db === null) {
      const request = this.#factory.open(this.#name, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(this.#store);
      this.#db = settle(request, `open the ${this.#name} database`);
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
