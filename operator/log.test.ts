import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { asLogger, createLog } from './log.ts';

function capture(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, stream };
}

describe('the structured log', () => {
  it('writes one JSON object a line with the time, level, service and the ids given', () => {
    const { lines, stream } = capture();
    const log = asLogger(createLog('coordinator', { destination: stream }));
    log.error('request failed', { requestId: 'req-1', jobId: 'job-1' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'error', service: 'coordinator', msg: 'request failed', requestId: 'req-1', jobId: 'job-1' });
    expect(Date.parse(String(lines[0]?.['time']))).toBeGreaterThan(Date.now() - 60_000);
  });

  it('censors fields named like secrets, should a caller pass one', () => {
    const { lines, stream } = capture();
    const log = createLog('gateway', { destination: stream });
    log.info({ apiKey: 'spn_secret', key: { secret: 'spn_inner', id: 'k1' }, mnemonic: 'abandon abandon' }, 'oops');
    const text = JSON.stringify(lines);
    expect(text).not.toContain('spn_secret');
    expect(text).not.toContain('spn_inner');
    expect(text).not.toContain('abandon');
    expect(lines[0]).toMatchObject({ apiKey: '[redacted]', key: { secret: '[redacted]', id: 'k1' } });
  });

  it('leaves out levels below the one set', () => {
    const { lines, stream } = capture();
    const log = createLog('modelhost', { destination: stream, level: 'warn' });
    log.info('quiet');
    log.warn('loud');
    expect(lines.map((l) => l['msg'])).toEqual(['loud']);
  });
});
