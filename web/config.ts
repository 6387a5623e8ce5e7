/** Where the page finds its model manifest: `?manifest=` in the URL, else the served `spinneret.json`. */
export interface PageConfig {
  manifestUrl: string;
}

export async function resolveConfig(location: Location, doFetch: typeof fetch = fetch): Promise<PageConfig> {
  const fromUrl = new URLSearchParams(location.search).get('manifest');
  if (fromUrl !== null) return { manifestUrl: new URL(fromUrl, location.href).href };
  try {
    const response = await doFetch(new URL('/spinneret.json', location.href), { cache: 'no-store' });
    if (response.ok) {
      const data = (await response.json()) as { manifestUrl?: unknown };
      if (typeof data.manifestUrl === 'string') return { manifestUrl: new URL(data.manifestUrl, location.href).href };
    }
  } catch {
    // No served config: fall back to the manifest next to the app.
  }
  return { manifestUrl: new URL('/models/manifest.json', location.href).href };
}
