// Bundles the `tessera` CLI (src/client, and the few modules it imports from elsewhere) into
// plain JavaScript under dist/cli, so the command starts without compiling TypeScript, and lists
// the source files it was built from in dist/cli/sources.json: bin/tessera.js runs the bundle
// only while none of them is newer. Run by `npm install` (prepare) and `npm run build:cli`; an
// argument overrides the output folder.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** Our TypeScript as plain JavaScript for Node, its packages left to node_modules (also src/launcher/server-bundle.ts). */
export const NODE_BUNDLE = {
  bundle: true,
  // Lazily imported parts (subscriptions: graphql-ws and ws) become chunks loaded on first use.
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
};

export const CLI_BUILD = { ...NODE_BUNDLE, entryPoints: ['src/client/cli.ts'], metafile: true };

// Built when run (npm install, npm run build:cli), not when imported for NODE_BUNDLE.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = new URL('..', import.meta.url).pathname;
  const outdir = process.argv[2] ?? 'dist/cli';
  const { metafile } = await build({ ...CLI_BUILD, absWorkingDir: root, outdir });
  // Paths relative to the project's root; written last, so a build cut short looks stale.
  await writeFile(join(root, outdir, 'sources.json'), JSON.stringify(Object.keys(metafile.inputs).sort(), null, 1) + '\n');
}
