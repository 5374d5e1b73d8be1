// The `tessera` command starts without compiling TypeScript: bin/tessera.js runs the esbuild
// bundle while it is fresh (else the sources through tsx), and the bundle loads the heavy
// modules (graphql-ws, ws, cli-progress) only when a command needs them. Start-up time itself is
// measured by hand (README, "The CLI"), not asserted: the machine is shared.
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const cleanup: string[] = [];
afterAll(() => Promise.all(cleanup.map((dir) => rm(dir, { recursive: true, force: true }))));

/** Every package a chunk loads at start: its static imports, through local chunks. */
async function staticPackages(dir: string, file: string, seen = new Set<string>()): Promise<Set<string>> {
  const packages = new Set<string>();
  if (seen.has(file)) return packages;
  seen.add(file);
  const code = await readFile(join(dir, file), 'utf8');
  for (const [, spec] of code.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s*"([^"]+)"|^\s*import\s*"([^"]+)"/gm)) {
    if (spec === undefined) continue;
    if (spec.startsWith('./')) for (const p of await staticPackages(dir, spec.slice(2), seen)) packages.add(p);
    else packages.add(spec);
  }
  return packages;
}

it('the bundle runs --help, and loads graphql-ws, ws and cli-progress only on demand', async () => {
  // Inside the project, so the bundle's bare imports resolve from its node_modules.
  await mkdir(join(root, 'dist'), { recursive: true });
  const out = await mkdtemp(join(root, 'dist', 'test-cli-'));
  cleanup.push(out);
  await run(process.execPath, ['scripts/build-cli.mjs', relative(root, out)], { cwd: root });
  const packages = await staticPackages(out, 'cli.js');
  expect([...packages]).toContain('commander');
  for (const heavy of ['graphql-ws', 'ws', 'cli-progress', 'tsx', 'tsx/esm/api']) expect([...packages]).not.toContain(heavy);
  // The lazily imported subscriptions are a chunk of their own that does load them.
  const chunks = await readdir(out);
  const subscriptions = chunks.find((f) => f.startsWith('subscriptions-'));
  expect(subscriptions).toBeDefined();
  expect([...(await staticPackages(out, subscriptions!))]).toEqual(expect.arrayContaining(['graphql-ws', 'ws']));

  const { stdout } = await run(process.execPath, [join(out, 'cli.js'), '--help'], { cwd: tmpdir() });
  expect(stdout).toMatch(/^Usage: tessera /);
});

it('bin/tessera.js runs the bundle while it is fresh, the sources when any source it was built from is newer or the bundle is missing', async () => {
  // A copy of the launcher in a tree of its own: a stand-in bundle and source that say which ran.
  const tree = await mkdtemp(join(tmpdir(), 'tessera-bin-'));
  cleanup.push(tree);
  await cp(join(root, 'bin', 'tessera.js'), join(tree, 'bin', 'tessera.js'));
  await symlink(join(root, 'node_modules'), join(tree, 'node_modules'));
  await mkdir(join(tree, 'dist', 'cli'), { recursive: true });
  await mkdir(join(tree, 'src', 'client'), { recursive: true });
  await mkdir(join(tree, 'src', 'auth'), { recursive: true });
  await writeFile(join(tree, 'package.json'), '{"type":"module"}');
  const source = join(tree, 'src', 'client', 'cli.ts');
  const elsewhere = join(tree, 'src', 'auth', 'helper.ts'); // imported from outside src/client
  const bundle = join(tree, 'dist', 'cli', 'cli.js');
  await writeFile(source, "const ran: string = 'source';\nconsole.log(ran);\n");
  await writeFile(elsewhere, 'export {};\n');
  await writeFile(join(tree, 'dist', 'cli', 'sources.json'), JSON.stringify(['src/auth/helper.ts', 'src/client/cli.ts']));
  await writeFile(bundle, "console.log('bundle');\n");
  const which = async () => (await run(process.execPath, [join(tree, 'bin', 'tessera.js')])).stdout.trim();

  const past = new Date(Date.now() - 60_000);
  await utimes(source, past, past);
  await utimes(elsewhere, past, past);
  expect(await which()).toBe('bundle');

  await utimes(elsewhere, new Date(), new Date()); // an edit after the build, outside src/client
  expect(await which()).toBe('source');
  await utimes(elsewhere, past, past);
  expect(await which()).toBe('bundle');

  await utimes(source, new Date(), new Date()); // an edit of the CLI itself
  expect(await which()).toBe('source');

  await rm(bundle);
  expect(await which()).toBe('source');
});

it('a closed output pipe (tessera --help | head -1) ends the command quietly with status 0', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [join(root, 'bin', 'tessera.js'), '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.once('data', () => child.stdout.destroy()); // as head does after its first line
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  expect(stderr).not.toContain('EPIPE');
  expect(status).toBe(0);
});
