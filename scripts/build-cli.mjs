// Bundles the `tessera` CLI (src/client) into plain JavaScript under dist/cli, so the command
// starts without compiling TypeScript (bin/tessera.js prefers the bundle while it is fresh).
// Run by `npm install` (prepare) and `npm run build:cli`; an argument overrides the output folder.
import { build } from 'esbuild';

export const CLI_BUILD = {
  entryPoints: ['src/client/cli.ts'],
  bundle: true,
  // Lazily imported parts (subscriptions: graphql-ws and ws) become chunks loaded on first use.
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
};

const outdir = process.argv[2] ?? 'dist/cli';
await build({ ...CLI_BUILD, absWorkingDir: new URL('..', import.meta.url).pathname, outdir });
