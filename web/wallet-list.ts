/**
 * The wallets the page offers in TON Connect's window: the configured list (TON Connect's
 * public one by default), fetched only when someone asks to connect, keeping only the wallets
 * that can connect from this page: injected (browser-extension) bridges, and HTTP bridges whose
 * origin the page's Content Security Policy allows (the app server says which, `bridgeOrigins`
 * in spinneret.json). TON Connect is handed the result as a data: URL.
 */

/** TON Connect's public wallets list (the SDK's default source). */
export const PUBLIC_WALLETS_LIST = 'https://config.ton.org/wallets-v2.json';

/** Why the list could not be had; each has its own words on the page. */
export type WalletsListFailure = 'offline' | 'unreachable' | 'malformed' | 'empty';

export class WalletsListError extends Error {
  override readonly name = 'WalletsListError';
  constructor(
    readonly reason: WalletsListFailure,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

interface Bridge {
  type: string;
  url?: string;
  key?: string;
}

export interface OfferedWallets {
  /** The filtered list, as a data: URL for TON Connect's `walletsListSource`. */
  source: string;
  /** `app_name`s offered. */
  offered: string[];
  /** `app_name`s left out because no bridge of theirs is reachable here. */
  leftOut: string[];
}

/** Keeps each wallet's bridges that can work here and drops wallets with none; throws on a list that is not TON Connect's shape. */
export function keepReachable(
  list: unknown,
  allowedOrigins: readonly string[],
  pageOrigin: string,
): Omit<OfferedWallets, 'source'> & {
  wallets: unknown[];
} {
  if (!Array.isArray(list)) throw new WalletsListError('malformed', 'the wallets list is not an array');
  const allowed = new Set([...allowedOrigins, pageOrigin]);
  const wallets: unknown[] = [];
  const offered: string[] = [];
  const leftOut: string[] = [];
  for (const entry of list.slice(0, 500)) {
    const wallet = entry as { app_name?: unknown; bridge?: unknown };
    if (typeof wallet.app_name !== 'string' || !Array.isArray(wallet.bridge)) continue;
    const bridges = (wallet.bridge as Bridge[]).filter((b) => {
      if (b.type === 'js') return typeof b.key === 'string';
      if (b.type !== 'sse' || typeof b.url !== 'string' || !URL.canParse(b.url)) return false;
      return allowed.has(new URL(b.url).origin);
    });
    if (bridges.length === 0) {
      leftOut.push(wallet.app_name);
      continue;
    }
    wallets.push({ ...wallet, bridge: bridges });
    offered.push(wallet.app_name);
  }
  return { wallets, offered, leftOut };
}

/** Fetches the list from `source` (relative to `pageUrl`) and keeps the reachable wallets. */
export async function loadWalletsList(options: {
  source: string | null;
  allowedOrigins: readonly string[];
  pageUrl: string;
  online: boolean;
  fetch?: typeof fetch;
}): Promise<OfferedWallets> {
  if (!options.online) throw new WalletsListError('offline', 'the browser is offline');
  const url = new URL(options.source ?? PUBLIC_WALLETS_LIST, options.pageUrl);
  let list: unknown;
  try {
    const response = await (options.fetch ?? fetch)(url, { cache: 'no-cache' });
    if (!response.ok) throw new WalletsListError('unreachable', `HTTP ${response.status} from ${url.host || 'the page'}`);
    list = await response.json().catch(() => {
      throw new WalletsListError('malformed', 'the wallets list is not JSON');
    });
  } catch (err) {
    if (err instanceof WalletsListError) throw err;
    throw new WalletsListError('unreachable', err instanceof Error ? err.message : String(err));
  }
  const kept = keepReachable(list, options.allowedOrigins, new URL(options.pageUrl).origin);
  if (kept.wallets.length === 0 && Array.isArray(list) && list.length > 0) throw new WalletsListError('empty', kept.leftOut.join(', '));
  return {
    source: `data:application/json,${encodeURIComponent(JSON.stringify(kept.wallets))}`,
    offered: kept.offered,
    leftOut: kept.leftOut,
  };
}
