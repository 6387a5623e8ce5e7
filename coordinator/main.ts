/**
 * `npx tsx coordinator/main.ts [--config FILE] [--create-key LABEL] [--check]`: the same as
 * `spinneret coordinator` (operator/cli.ts), with everything the network needs wired by
 * operator/wiring.ts. Settings: docs/operating.md.
 */
import { main } from '../operator/cli.ts';

const code = await main(['coordinator', ...process.argv.slice(2)]);
if (code >= 0) process.exitCode = code;
