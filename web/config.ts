/**
 * Where the page finds the model manifest, the network and the wallets list: `?manifest=`,
 * `?coordinator=` and `?wallets=` in the URL, else the served `spinneret.json`, else the
 * app's own origin.
 */
export interface PageConfig {
  manifestUrl: string;
  /** Base URL of the coordinator (http or https), or null when none is configured. */
  coordinatorUrl: string | null;
  /**
   * TON Connect wallets list (`?wallets=`, or `walletsListUrl` in spinneret.json); null: the
   * SDK's public list. Tests and kiosks point it at a local list.
   */
  walletsListUrl: string | null;
  /** Origins of the wallet bridges this page's CSP allows (from the app server); wallets whose bridge is not here are not offered. */
  bridgeOrigins: string[];
}

export async function resolveConfig(location: Location, doFetch: typeof fetch = fetch): Promise<PageConfig> {
  const params = new URLSearchParams(location.search);
  let served: { manifestUrl?: unknown; coordinatorUrl?: unknown; walletsListUrl?: unknown; bridgeOrigins?: unknown } = {};
  try {
    const response = await doFetch(new URL('/spinneret.json', location.href), { cache: 'no-store' });
    if (response.ok) served = (await response.json()) as typeof served;
  } catch {
    // No served config: the defaults below apply.
  }
  const pick = (fromUrl: string | null, fromFile: unknown, fallback: string | null): string | null => {
    const value = fromUrl ?? (typeof fromFile === 'string' ? fromFile : fallback);
    return value === null ? null : new URL(value, location.href).href;
  };
  return {
    manifestUrl: pick(params.get('manifest'), served.manifestUrl, '/models/manifest.json') ?? '',
    coordinatorUrl: pick(params.get('coordinator'), served.coordinatorUrl, null),
    walletsListUrl: pick(params.get('wallets'), served.walletsListUrl, null),
    bridgeOrigins: Array.isArray(served.bridgeOrigins)
      ? served.bridgeOrigins.filter((o): o is string => typeof o === 'string' && URL.canParse(o)).map((o) => new URL(o).origin)
      : [],
  };
}

/** True when the page was opened in kiosk mode (`?kiosk=1` or `?kiosk=true`). */
export function kioskRequested(search: string): boolean {
  const value = new URLSearchParams(search).get('kiosk');
  return value !== null && value !== '0' && value !== 'false';
}
