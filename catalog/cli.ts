/**
 * `npm run catalog -- <command> [ids…] [--hub URL] [--out DIR]`:
 * - `status`: which models' files are pinned (pins.json);
 * - `pin`: downloads each file once from the hub and records its size and SHA-256; a pinned
 *   file whose hash changed is refused;
 * - `mirror --out DIR`: copies the pinned files into DIR in the hub layout, each checked,
 *   for the model host to serve (`npx tsx modelhost/main.ts --mirror DIR`);
 * - `entries --mirror DIR [--base URL] [--out FILE]`: the model host's manifest entries for the
 *   mirrored models (hub repository, revision, variant, each file's size and SHA-256, the facts
 *   read from the model's own files), the q4 fallback builds under `<id>-q4` too, written to
 *   DIR/manifest-entries.json by default, which the model host lists when it serves that
 *   mirror; `--webllm` adds web-llm's prebuilt MLC builds under `<id>-MLC` (fetched from the
 *   hub and web-llm's library host at run time: not pinned, not mirrored);
 * - `prices [--merge FILE] [--out FILE]`: the coordinator's price entries from the catalog's
 *   cited prices (nanoTON per 1,000 tokens); `--merge` sets them in a prices.json, keeping
 *   every other model's price.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mirror, MIRROR_ENTRIES, pin, readCatalog, readPins, status } from './catalog.ts';
import { manifestEntries, mergePrices, priceEntries, webllmEntries } from './entries.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    hub: { type: 'string' },
    out: { type: 'string' },
    pins: { type: 'string' },
    mirror: { type: 'string' },
    base: { type: 'string' },
    merge: { type: 'string' },
    webllm: { type: 'boolean' },
  },
});
const [command, ...ids] = positionals;
const catalog = readCatalog();
const pinsPath = values.pins ?? new URL('./pins.json', import.meta.url).pathname;
const pins = readPins(pinsPath);
const hub = values.hub !== undefined ? { hub: values.hub } : {};

try {
  if (command === 'status') {
    for (const s of status(catalog, pins)) console.log(`${s.id.padEnd(28)} ${s.pinned}/${s.files} files pinned`);
  } else if (command === 'pin') {
    const done = await pin(catalog, pins, { ...hub, ids });
    writeFileSync(pinsPath, JSON.stringify(pins, null, 2) + '\n');
    console.log(`Pinned ${done.pinned} files; ${done.unchanged} already pinned and unchanged.`);
  } else if (command === 'mirror') {
    if (values.out === undefined) throw new Error('mirror needs --out DIR');
    console.log(`Mirrored ${await mirror(catalog, pins, values.out, { ...hub, ids })} files into ${values.out}.`);
  } else if (command === 'entries') {
    if (values.mirror === undefined) throw new Error('entries needs --mirror DIR (a folder written by `npm run catalog -- mirror`)');
    const entries = [
      ...manifestEntries(catalog, pins, values.mirror, { ids, ...(values.base !== undefined ? { baseUrl: values.base } : {}) }),
      // web-llm's builds are fetched from the hub and web-llm's library host, not from the mirror.
      ...(values.webllm === true ? webllmEntries(catalog, { ids }) : []),
    ];
    const out = values.out ?? join(values.mirror, MIRROR_ENTRIES);
    writeFileSync(out, JSON.stringify(entries, null, 2) + '\n');
    console.log(`Wrote ${entries.length} manifest entries (${entries.map((e) => e.id).join(', ')}) to ${out}.`);
  } else if (command === 'prices') {
    const text =
      values.merge !== undefined
        ? JSON.stringify(mergePrices(JSON.parse(readFileSync(values.merge, 'utf8')) as unknown, catalog), null, 2)
        : JSON.stringify(priceEntries(catalog), null, 2);
    if (values.out !== undefined) writeFileSync(values.out, text + '\n');
    else console.log(text);
  } else {
    console.error(
      'Usage: npm run catalog -- status | pin [ids…] [--hub URL] | mirror --out DIR [ids…] [--hub URL] | entries --mirror DIR [ids…] [--base URL] [--out FILE] [--webllm] | prices [--merge prices.json] [--out FILE]',
    );
    process.exitCode = 2;
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
}
