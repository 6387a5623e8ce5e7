/**
 * `npm run catalog -- <command> [ids…] [--hub URL] [--out DIR]`:
 * - `status`: which models' files are pinned (pins.json);
 * - `pin`: downloads each file once from the hub and records its size and SHA-256; a pinned
 *   file whose hash changed is refused;
 * - `mirror --out DIR`: copies the pinned files into DIR in the hub layout, each checked,
 *   for the model host to serve (`npx tsx modelhost/main.ts --mirror DIR`).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { mirror, pin, readCatalog, readPins, status } from './catalog.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { hub: { type: 'string' }, out: { type: 'string' }, pins: { type: 'string' } },
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
  } else {
    console.error('Usage: npm run catalog -- status | pin [ids…] [--hub URL] | mirror --out DIR [ids…] [--hub URL]');
    process.exitCode = 2;
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
}
