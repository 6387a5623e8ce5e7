/** Downloads, verifies and caches model files. */
import type { ModelFile } from '../../protocol/manifest.ts';

export interface FileProgress {
  url: string;
  loadedBytes: number;
  totalBytes: number;
}

export interface GetFileOptions {
  signal?: AbortSignal;
  onProgress?: (progress: FileProgress) => void;
}

export interface ModelStore {
  /**
   * The file's bytes, from the cache or downloaded, always checked against `file.sha256`
   * before they are returned. Throws IntegrityError (the file is discarded),
   * ModelUnreachableError or AbortedError.
   */
  getFile(file: ModelFile, options?: GetFileOptions): Promise<Uint8Array>;
  /** True when a verified copy is cached. */
  has(file: ModelFile): Promise<boolean>;
  /** Removes cached copies; returns the bytes freed. */
  evict(files: readonly ModelFile[]): Promise<number>;
}
