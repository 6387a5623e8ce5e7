import { describe, expect, it } from 'vitest';
import { keepReachable, loadWalletsList, WalletsListError } from './wallet-list.ts';

const list = [
  { app_name: 'telegram-wallet', name: 'Wallet', bridge: [{ type: 'sse', url: 'https://walletbot.me/tonconnect-bridge/bridge' }] },
  {
    app_name: 'tonkeeper',
    name: 'Tonkeeper',
    bridge: [
      { type: 'sse', url: 'https://bridge.tonapi.io/bridge' },
      { type: 'js', key: 'tonkeeper' },
    ],
  },
  { app_name: 'newcomer', name: 'New', bridge: [{ type: 'sse', url: 'https://bridge.unknown.example/bridge' }] },
  {
    app_name: 'half',
    name: 'Half',
    bridge: [
      { type: 'sse', url: 'https://bridge.unknown.example/b' },
      { type: 'js', key: 'half' },
    ],
  },
];
const allowed = ['https://walletbot.me'];

describe('the wallets offered', () => {
  it('keeps wallets with a bridge the page may reach, and only those bridges', () => {
    const kept = keepReachable(list, allowed, 'http://127.0.0.1:5173');
    expect(kept.offered).toEqual(['telegram-wallet', 'tonkeeper', 'half']);
    expect(kept.leftOut).toEqual(['newcomer']);
    // Tonkeeper's HTTP bridge is not allowed here, its browser extension is.
    expect(kept.wallets[1]).toMatchObject({ bridge: [{ type: 'js', key: 'tonkeeper' }] });
  });

  it('fetches only when asked, hands TON Connect a data: URL, and says why it cannot', async () => {
    const calls: string[] = [];
    const fetchList = (async (url: URL) => (calls.push(String(url)), Response.json(list))) as unknown as typeof fetch;
    const offered = await loadWalletsList({
      source: '/w.json',
      allowedOrigins: allowed,
      pageUrl: 'http://127.0.0.1:5173/',
      online: true,
      fetch: fetchList,
    });
    expect(calls).toEqual(['http://127.0.0.1:5173/w.json']);
    expect(offered.source.startsWith('data:application/json,')).toBe(true);
    expect(JSON.parse(decodeURIComponent(offered.source.slice('data:application/json,'.length)))).toHaveLength(3);

    await expect(
      loadWalletsList({ source: null, allowedOrigins: allowed, pageUrl: 'http://x/', online: false, fetch: fetchList }),
    ).rejects.toMatchObject({
      reason: 'offline',
    });
    const down = (async () => {
      throw new TypeError('Failed to fetch');
    }) as unknown as typeof fetch;
    const error = await loadWalletsList({ source: null, allowedOrigins: allowed, pageUrl: 'http://x/', online: true, fetch: down }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WalletsListError);
    expect(error).toMatchObject({ reason: 'unreachable' });
    const notJson = (async () => new Response('<html>')) as unknown as typeof fetch;
    await expect(
      loadWalletsList({ source: null, allowedOrigins: allowed, pageUrl: 'http://x/', online: true, fetch: notJson }),
    ).rejects.toMatchObject({
      reason: 'malformed',
    });
    expect(calls).toHaveLength(1);
  });
});
