// How Tessera's server processes start (coordinator, datanode, and `npm start`'s own supervisor
// when a test or the bench starts it): from an esbuild bundle of their TypeScript, built when
// `npm start` (or a vitest run, or the bench) starts, not through tsx. On Node 20 tsx's loader
// hooks run on a thread of their own and every module a process imports, node_modules included,
// is a round trip to it: a coordinator spent ~2.7 s of CPU starting (~1.0 s from the bundle), a
// datanode ~0.9 s (~0.4 s), and the loader's thread is a second V8 heap that a coordinator keeps
// for its whole life (~40 MB of RSS: 150 MB idle through tsx, 106 MB bundled). The bundle is the
// working tree's source as it is when the cluster starts (built in well under a second), so it is
// never stale; without one (`npm run coordinator`, `npm run datanode`) a process runs through tsx.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { REPO_ROOT } from './child-process.ts';
import { isAlive } from './pid-files.ts';
import { NODE_BUNDLE } from '../../scripts/build-cli.mjs';

/** The folder holding the bundle, for the processes that start servers (inherited by their children). */
export const SERVER_BUNDLE_ENV = 'TESSERA_SERVER_BUNDLE';

/** Inside the repository, so that the bundle's packages are found in its node_modules. */
const BUNDLES_DIR = join(REPO_ROOT, 'node_modules', '.cache');
/** A bundle's folder: tessera-servers-<pid of the process that made it>-<random>. */
const BUNDLE_PREFIX = 'tessera-servers-';
const BUNDLE_NAME = new RegExp(`^${BUNDLE_PREFIX}(\\d+)-`);

/** The entries started as processes, and the module the coordinator loads by path. */
const ENTRIES = ['src/main.ts', 'datanode/main.ts', 'src/start-cluster.ts', 'src/metadata/postgres/index.ts'];

/** Node's arguments to run `entry` (relative to the repository): the bundled file when there is a bundle (SERVER_BUNDLE_ENV), else through tsx. */
export function nodeArgsFor(entry: string): string[] {
  const dir = process.env[SERVER_BUNDLE_ENV];
  if (dir === undefined || !ENTRIES.includes(entry)) return ['--import', 'tsx', entry];
  const bundled = join(dir, entry.replace(/\.ts$/, '.js'));
  // A missing bundle is a broken setup, not a reason to test something else quietly.
  if (!existsSync(bundled))
    throw new Error(`${bundled} is missing: the server bundle ${SERVER_BUNDLE_ENV} names was removed or never built`);
  return [bundled];
}

/**
 * Bundles ENTRIES into `outdir`, which must lie inside the repository (their packages stay
 * external and are found in its node_modules). A bundled module's import.meta.url would be the
 * bundle's, so each source's own URL is written in its place (the SQLite migrations, the console's
 * files and the repository root are found from it), and the coordinator's import of its
 * PostgreSQL engine by path names the bundled engine.
 */
export async function buildServerBundle(outdir: string, entries: string[] = ENTRIES): Promise<void> {
  const engineUrl = pathToFileURL(join(outdir, 'src/metadata/postgres/index.js')).href;
  const sourceUrls: Plugin = {
    name: 'source-urls',
    setup(b) {
      // Our .mjs too (scripts/build-cli.mjs, imported for NODE_BUNDLE, builds the CLI when its
      // own URL is the process's main script: as the bundle's, it would take itself for it).
      b.onLoad({ filter: /\.(ts|mts|mjs)$/ }, async ({ path }) => {
        let contents = (await readFile(path, 'utf8')).replaceAll('import.meta.url', JSON.stringify(pathToFileURL(path).href));
        if (path === join(REPO_ROOT, 'src/metadata/store.ts')) {
          const engine = "const POSTGRES_ENGINE = './postgres/index.ts';";
          if (!contents.includes(engine)) throw new Error(`src/metadata/store.ts no longer has ${engine} (src/launcher/server-bundle.ts)`);
          contents = contents.replace(engine, `const POSTGRES_ENGINE = ${JSON.stringify(engineUrl)};`);
        }
        return { contents, loader: path.endsWith('.mjs') ? 'js' : 'ts' };
      });
    },
  };
  // Split chunks: the engine loaded by path shares the coordinator's own modules (its classes).
  await build({ ...NODE_BUNDLE, entryPoints: entries, absWorkingDir: REPO_ROOT, outbase: REPO_ROOT, outdir, plugins: [sourceUrls] });
}

/**
 * The bundle this process and its children start servers from: the one named by
 * SERVER_BUNDLE_ENV (made by whoever started this process, and removed by it), else a new one
 * built now, named in this process's environment and removed by `remove` (and when this process
 * exits). Bundles left by processes that are gone (killed before they could remove theirs) are
 * removed first, unless a server still runs on one (removeOrphanBundles).
 */
export async function prepareServerBundle(): Promise<{ dir: string; remove: () => void }> {
  const inherited = process.env[SERVER_BUNDLE_ENV];
  if (inherited !== undefined) return { dir: inherited, remove: () => undefined };
  await mkdir(BUNDLES_DIR, { recursive: true });
  removeOrphanBundles();
  const dir = await mkdtemp(join(BUNDLES_DIR, `${BUNDLE_PREFIX}${process.pid}-`));
  const remove = () => {
    rmSync(dir, { recursive: true, force: true });
    process.off('exit', remove);
  };
  process.once('exit', remove);
  try {
    await buildServerBundle(dir);
  } catch (err) {
    remove();
    throw err;
  }
  process.env[SERVER_BUNDLE_ENV] = dir;
  return { dir, remove };
}

/**
 * Removes the bundles in `dir` whose maker is no longer running and that no running process was
 * started from (a supervisor killed with SIGKILL leaves its servers running on its bundle): only
 * ours (the prefix), never another's. Where the command lines of processes cannot be read (no
 * /proc), a bundle whose maker is gone may still be in use, so none is removed.
 */
export function removeOrphanBundles(dir = BUNDLES_DIR): void {
  const commandLines = runningCommandLines();
  if (commandLines === undefined) return;
  for (const name of readdirSync(dir)) {
    const pid = Number(BUNDLE_NAME.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || isAlive(pid)) continue;
    const path = join(dir, name);
    if (commandLines.some((line) => line.includes(path + sep))) continue;
    rmSync(path, { recursive: true, force: true });
  }
}

/** The command lines of the processes running (Linux /proc), or undefined where they cannot be read. */
function runningCommandLines(): string[] | undefined {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return undefined;
  }
  const lines: string[] = [];
  for (const pid of pids) {
    try {
      lines.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' '));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return lines;
}
