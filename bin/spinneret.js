#!/usr/bin/env node
// The operator's commands (operator/cli.ts), run from TypeScript through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../operator/cli.ts');
const code = await main(process.argv.slice(2));
// -1: a server is running; it exits on SIGTERM/SIGINT.
if (code >= 0) process.exitCode = code;
