// How the tests start a Tessera server process (coordinator, datanode, `npm start`'s supervisor):
// from a bundle of its TypeScript built once per `vitest run` (test/support/global-setup.ts), not
// through tsx. On Node 20 tsx's loader hooks run on a thread of their own and every module the
// process imports, node_modules included, is a round trip to it: a coordinator spent ~2.7 s of
// CPU starting (~1.0 s from the bundle), a datanode ~0.9 s (~0.4 s), and the tests start a few
// hundred of them. The bundle is the same source (built from the working tree at the start of
// the run); the processes `npm start` spawns itself still run through tsx, as in production.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { REPO_ROOT } from '../../src/launcher/child-process.ts';
import { NODE_BUNDLE } from '../../scripts/build-cli.mjs';

/** Set by the global setup for the test workers: the folder holding the bundle. */
export const SERVER_BUNDLE_ENV = 'TESSERA_TEST_SERVER_BUNDLE';

/** The entries started as processes by the tests, and the module the coordinator loads by path. */
const ENTRIES = ['src/main.ts', 'datanode/main.ts', 'src/start-cluster.ts', 'src/metadata/postgres/index.ts'];

/** Node's arguments to run `entry` (relative to the repository): the bundled file, else through tsx. */
export function nodeArgsFor(entry: string): string[] {
  const dir = process.env[SERVER_BUNDLE_ENV];
  if (dir === undefined || !ENTRIES.includes(entry)) return ['--import', 'tsx', entry];
  const bundled = join(dir, entry.replace(/\.ts$/, '.js'));
  // A missing bundle is a broken setup, not a reason to test something else quietly.
  if (!existsSync(bundled)) throw new Error(`${bundled} is missing: the test bundle (${SERVER_BUNDLE_ENV}) was not built`);
  return [bundled];
}

/**
 * Bundles ENTRIES into `outdir`, which must lie inside the repository (their packages stay
 * external and are found in its node_modules). A bundled module's import.meta.url would be the
 * bundle's, so each source's own URL is written in its place (the SQLite migrations, the console's
 * files and the repository root are found from it), and the coordinator's import of its
 * PostgreSQL engine by path names the bundled engine.
 */
export async function buildServerBundle(outdir: string): Promise<void> {
  const engineUrl = pathToFileURL(join(outdir, 'src/metadata/postgres/index.js')).href;
  const sourceUrls: Plugin = {
    name: 'source-urls',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, async ({ path }) => {
        let contents = (await readFile(path, 'utf8')).replaceAll('import.meta.url', JSON.stringify(pathToFileURL(path).href));
        if (path === join(REPO_ROOT, 'src/metadata/store.ts')) {
          const engine = "const POSTGRES_ENGINE = './postgres/index.ts';";
          if (!contents.includes(engine)) throw new Error(`src/metadata/store.ts no longer has ${engine} (test/support/server-bundle.ts)`);
          contents = contents.replace(engine, `const POSTGRES_ENGINE = ${JSON.stringify(engineUrl)};`);
        }
        return { contents, loader: 'ts' };
      });
    },
  };
  // Split chunks: the engine loaded by path shares the coordinator's own modules (its classes).
  await build({ ...NODE_BUNDLE, entryPoints: ENTRIES, absWorkingDir: REPO_ROOT, outbase: REPO_ROOT, outdir, plugins: [sourceUrls] });
}
