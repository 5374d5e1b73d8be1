// The real `tessera` CLI process (bin/tessera.js) as the bench runs it: upload of a file and
// download to a file, end to end (start-up, hashing, verification, the file written), against
// the bench cluster with its admin token.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './processes.ts';
import { pieceAt, type Piece } from './workloads.ts';

const BIN = path.join(REPO_ROOT, 'bin', 'tessera.js');

/**
 * Builds the CLI bundle as `npm install` does: bin/tessera.js falls back to compiling the
 * TypeScript on every start when the bundle is missing or stale, which is not what users run.
 */
export function buildCliBundle(): void {
  const built = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'build-cli.mjs')], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`the CLI bundle did not build: ${built.stderr.slice(0, 500)}`);
}

const CPU_PRELOAD = new URL('./cli-cpu.mjs', import.meta.url).href;

/** CPU ms (user + system) the CLI processes the bench ran used, summed: read and reset by takeCliCpu. */
let cliCpuMs = 0;
export const takeCliCpu = () => {
  const ms = cliCpuMs;
  cliCpuMs = 0;
  return ms;
};

/** Runs `tessera <args>`; rejects with its stderr when it exits non-zero. Resolves to its stdout. */
export function runCli(url: string, token: string, args: string[], home: string): Promise<string> {
  const cpuFile = path.join(home, 'cli-cpu.json');
  return new Promise((resolve, reject) => {
    // HOME of its own: the CLI's resume ledger lands in the bench's temp dir, not the user's.
    const child = spawn(process.execPath, ['--import', CPU_PRELOAD, BIN, '--url', url, '--token', token, ...args], {
      cwd: home,
      env: { ...process.env, HOME: home, TESSERA_STATE_DIR: path.join(home, 'state'), NODE_OPTIONS: '', TESSERA_BENCH_CPU_FILE: cpuFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      try {
        const { user, system } = JSON.parse(fs.readFileSync(cpuFile, 'utf8')) as { user: number; system: number };
        cliCpuMs += (user + system) / 1000;
        fs.rmSync(cpuFile);
      } catch {
        // no figure from a process that died before its exit hook
      }
      if (code === 0) resolve(stdout);
      else reject(new Error(`tessera ${args.join(' ')} exited ${code ?? signal}: ${stderr.slice(0, 500)}`));
    });
  });
}

/** Writes the bench image of `size` bytes (the same bytes the HTTP scenarios send) to `file`. */
export function writeImageFile(file: string, pool: Piece[], size: number, fragmentSize: number): void {
  const fd = fs.openSync(file, 'w', 0o600);
  try {
    for (let i = 0; i * fragmentSize < size; i++) fs.writeSync(fd, pieceAt(pool, size, fragmentSize, i).bytes);
  } finally {
    fs.closeSync(fd);
  }
}

/** `tessera upload --json`: the stored image's sha256. */
export async function cliUpload(url: string, token: string, home: string, file: string, name: string, parallel: number): Promise<string> {
  const out = await runCli(url, token, ['--json', 'upload', file, '--name', name, '--parallel', String(parallel), '--no-resume'], home);
  const [result] = JSON.parse(out) as { sha256?: string; error?: { code: string; message: string } }[];
  if (!result?.sha256) throw new Error(`tessera upload ${name}: ${JSON.stringify(result?.error ?? out)}`);
  return result.sha256;
}

/** `tessera download -o file` (verified against the image's sha256 by the CLI); the file is removed after. */
export async function cliDownload(
  url: string,
  token: string,
  home: string,
  name: string,
  file: string,
  expectedSize: number,
): Promise<void> {
  await runCli(url, token, ['download', name, '-o', file], home);
  const size = fs.statSync(file).size;
  fs.rmSync(file);
  if (size !== expectedSize) throw new Error(`tessera download ${name}: ${size} bytes written, expected ${expectedSize}`);
}
