import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CompressedFiles, pickEncoding } from './compressed.ts';

describe('compressed bodies', () => {
  it('picks brotli, then gzip, from Accept-Encoding, honouring q=0', () => {
    expect(pickEncoding('gzip, deflate, br, zstd')).toBe('br');
    expect(pickEncoding('gzip, deflate')).toBe('gzip');
    expect(pickEncoding('br;q=0, gzip;q=0.5')).toBe('gzip');
    expect(pickEncoding('identity')).toBeNull();
    expect(pickEncoding(undefined)).toBeNull();
    expect(pickEncoding('*')).toBe('br');
  });

  it('compresses a file once per encoding, and again only when it changed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'compressed-'));
    const file = join(dir, 'app.js');
    const text = 'console.log("spinneret");\n'.repeat(2000);
    writeFileSync(file, text);
    const files = new CompressedFiles();
    const info = statSync(file);
    const br = files.get(file, info.size, info.mtimeMs, 'br');
    // The same promise: a second request does not compress again.
    expect(files.get(file, info.size, info.mtimeMs, 'br')).toBe(br);
    expect(brotliDecompressSync(await br).toString()).toBe(text);
    expect((await br).length).toBeLessThan(text.length / 20);
    const gz = await files.get(file, info.size, info.mtimeMs, 'gzip');
    expect(gunzipSync(gz).toString()).toBe(text);
    expect(files.keptBytes).toBe((await br).length + gz.length);

    writeFileSync(file, 'changed');
    const changed = statSync(file);
    const again = files.get(file, changed.size, changed.mtimeMs, 'br');
    expect(again).not.toBe(br);
    expect(brotliDecompressSync(await again).toString()).toBe('changed');
  });

  it('knows what is worth compressing', () => {
    expect(CompressedFiles.worthCompressing('/a/ort.wasm')).toBe(true);
    expect(CompressedFiles.worthCompressing('/a/index.html')).toBe(true);
    expect(CompressedFiles.worthCompressing('/a/icon-512.png')).toBe(false);
  });
});
