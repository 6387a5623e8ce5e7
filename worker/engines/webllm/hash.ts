/** SHA-256 in the two spellings in play: lowercase hex (our manifests) and SRI (web-llm). */

/** `sha256-<base64>` from lowercase hex. */
export function sriFromHex(hex: string): string {
  let binary = '';
  for (let i = 0; i + 1 < hex.length; i += 2) binary += String.fromCharCode(parseInt(hex.slice(i, i + 2), 16));
  return `sha256-${btoa(binary)}`;
}

/** Lowercase hex from `sha256-<base64>`; other strings come back unchanged. */
export function hexFromSri(sri: string): string {
  const match = /^sha256-([A-Za-z0-9+/=]+)$/.exec(sri);
  if (match?.[1] === undefined) return sri;
  return Array.from(atob(match[1]), (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}
