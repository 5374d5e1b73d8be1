// How `datanode/main.ts` starts and stops as a process: flag validation that names the flag,
// refusing to run without a secret, the secret file, the listening line, clean exit on signals.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { datanodeClient } from './support/datanode-http.ts';
import { runDatanodeUntilExit, startDatanodeProcess, stopAllDatanodeProcesses } from './support/datanode-process.ts';

const dirs: string[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-dn-start-'));
  dirs.push(dir);
  return dir;
}

// afterAll, not afterEach: the refusal cases run concurrently, and a per-test stop-all would
// kill a neighbour's process.
afterAll(async () => {
  await stopAllDatanodeProcesses();
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe.concurrent('datanode process refusing to start', () => {
  it('refuses to start without a secret unless --insecure, and touches no data dir', async () => {
    const dataDir = join(await freshDir(), 'node');
    const run = await runDatanodeUntilExit({ dataDir });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/no cluster secret/);
    expect(run.stderr).toContain('--secret-file');
    expect(run.stderr).toContain('--insecure');
    expect(run.stdout).not.toContain('listening');
    await expect(readdir(dataDir)).rejects.toThrow(/ENOENT/);
  });

  it.each([
    ['--port', 'abc'],
    ['--port', '70000'],
    ['--port', '-1'],
    ['--health-interval-ms', '0'],
    ['--coordinator', 'not a url'],
  ])('a bad %s value (%s) stops it with a message naming the flag', async (flag, value) => {
    const run = await runDatanodeUntilExit({
      dataDir: await freshDir(),
      secret: 's',
      extraArgs: [flag, value],
    });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(flag);
    expect(run.stdout).not.toContain('listening');
  });

  it('an empty --secret-file stops it with a message naming the flag', async () => {
    const dir = await freshDir();
    const secretFile = join(dir, 'empty.secret');
    await writeFile(secretFile, '\n');
    const run = await runDatanodeUntilExit({ dataDir: join(dir, 'node'), secretFile });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('--secret-file');
  });
});

describe('datanode process start-up', () => {
  it('reads the secret from --secret-file and prints one listening line', async () => {
    const dir = await freshDir();
    const secretFile = join(dir, 'cluster.secret');
    await writeFile(secretFile, 'from-the-file\n', { mode: 0o600 });
    const node = await startDatanodeProcess({ dataDir: join(dir, 'node'), secretFile });
    expect(node.url).toBe(`http://127.0.0.1:${node.port}`);
    expect(node.port).toBeGreaterThan(0);
    const client = datanodeClient(node.url, 'from-the-file');
    expect((await client.put('f1', Buffer.from('abc'))).status).toBe(201);
    expect((await client.get('f1', { auth: false })).status).toBe(401);
    expect((await node.stop()).code).toBe(0);
  });

  it('--insecure runs without a secret', async () => {
    const node = await startDatanodeProcess({ dataDir: await freshDir(), extraArgs: ['--insecure'] });
    const client = datanodeClient(node.url, undefined);
    expect((await client.put('open', Buffer.from('abc'))).status).toBe(201);
    expect(node.stderr()).toContain('--insecure');
    expect((await node.stop()).code).toBe(0);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('%s closes the server and exits 0', async (signal) => {
    const node = await startDatanodeProcess({ dataDir: await freshDir(), secret: 's' });
    node.kill(signal);
    expect(await node.exited).toEqual({ code: 0, signal: null });
  });
});
