import { describe, expect, it } from 'vitest';
import { contentSecurityPolicy, TON_CONNECT_ORIGINS } from './serve.ts';

const directive = (csp: string, name: string): string[] =>
  csp
    .split('; ')
    .find((d) => d.startsWith(`${name} `))
    ?.split(' ')
    .slice(1) ?? [];

describe('content security policy', () => {
  it('lets the page reach its coordinator (HTTP and socket), model host and TON Connect, and nothing else', () => {
    const csp = contentSecurityPolicy({
      config: { manifestUrl: 'https://models.example/manifest.json', coordinatorUrl: 'https://coord.example:8443/' },
      connectSources: ['http://127.0.0.1:9000'],
    });
    const connect = directive(csp, 'connect-src');
    expect(connect).toEqual(
      expect.arrayContaining([
        "'self'",
        'https://coord.example:8443',
        'wss://coord.example:8443',
        'https://models.example',
        'http://127.0.0.1:9000',
        ...TON_CONNECT_ORIGINS,
      ]),
    );
    expect(connect).not.toContain('https:');
    expect(connect).not.toContain('data:');
    expect(directive(csp, 'script-src')).toEqual(expect.arrayContaining(["'self'", "'wasm-unsafe-eval'"]));
    expect(directive(csp, 'script-src')).not.toContain("'unsafe-inline'");
    expect(directive(csp, 'script-src')).not.toContain("'unsafe-eval'");
    expect(directive(csp, 'object-src')).toEqual(["'none'"]);
  });

  it('allows data: fetches only for an inline wallets list', () => {
    const csp = contentSecurityPolicy({ config: { manifestUrl: '/m.json', walletsListUrl: 'data:application/json,[]' } });
    expect(directive(csp, 'connect-src')).toContain('data:');
  });
});
