// The command line's shape, in-process (no cluster needed): help with examples for every
// command, and usage errors answered with `error USAGE: …` and status 2.
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../src/client/cli-program.ts';

// Nothing here should touch the resume ledger; if something did, it lands in a temp dir.
let stateDir: string;
beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'tessera-cli-help-'));
  process.env.TESSERA_STATE_DIR = stateDir;
});
afterAll(() => rm(stateDir, { recursive: true, force: true }));

function capture() {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((stdout += String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((stderr += String(chunk)), true));
  return () => ({ stdout, stderr });
}
afterEach(() => vi.restoreAllMocks());

const run = async (...args: string[]) => {
  const output = capture();
  const code = await runCli(['node', 'tessera', '--url', 'http://127.0.0.1:1', ...args]);
  vi.restoreAllMocks();
  return { code, ...output() };
};

it.each(['upload', 'download', 'ls', 'stat', 'rm', 'nodes', 'cluster', 'watch'])('%s --help shows usage and examples', async (command) => {
  const { code, stdout } = await run(command, '--help');
  expect(code).toBe(0);
  expect(stdout).toMatch(new RegExp(`^Usage: tessera ${command} `));
  expect(stdout).toMatch(/Examples:\n {2}\$ tessera /);
});

it('the top-level help lists every command', async () => {
  const { code, stdout } = await run('--help');
  expect(code).toBe(0);
  for (const command of ['upload', 'download', 'ls', 'stat', 'rm', 'nodes', 'watch'])
    expect(stdout).toMatch(new RegExp(`^ {2}${command} `, 'm'));
  expect(stdout).toMatch(/TESSERA_URL/);
});

it.each([
  [['upload']],
  [['upload', '--parallel', '0', 'a.png']],
  [['upload', '--parallel', 'many', 'a.png']],
  [['upload', '--name', 'x', 'a.png', 'b.png']],
  [['ls', '--first', '1001']],
  [['frobnicate']],
  [['download', 'dir/']],
])('%j is a usage error: status 2, error USAGE on stderr', async (args) => {
  const { code, stderr, stdout } = await run(...args);
  expect(code).toBe(2);
  expect(stderr).toMatch(/^error USAGE: /);
  expect(stdout).toBe('');
});
