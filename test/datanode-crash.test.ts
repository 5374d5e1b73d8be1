// kill -9 of a real datanode in the middle of PUTs: no partial fragment under any id, the
// fragments it had confirmed are intact, and a restart on the same data dir clears tmp/.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { DatanodeHealthReport, FragmentListing } from '../src/shared/datanode-api.ts';
import { datanodeClient, sha256 } from './support/datanode-http.ts';
import { startDatanodeProcess, stopAllDatanodeProcesses } from './support/datanode-process.ts';
import { until } from './support/poll.ts';

const SECRET = 'crash-test-secret';
const dirs: string[] = [];

afterEach(async () => {
  await stopAllDatanodeProcesses();
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** Sends `body` 1 MiB at a time with pauses, until the body is sent or the connection dies. */
function slowPut(url: string, id: string, body: Buffer): { stop(): void; done: Promise<unknown> } {
  const { hostname, port } = new URL(url);
  const req = httpRequest({
    hostname,
    port,
    method: 'PUT',
    path: `/fragments/${id}`,
    agent: false,
    headers: {
      authorization: `Bearer ${SECRET}`,
      'x-content-sha256': sha256(body),
      'content-length': String(body.length),
    },
  });
  let stopped = false;
  const done = new Promise((resolve) => {
    req.on('error', resolve); // expected: the datanode dies under us
    req.on('response', resolve);
  });
  void (async () => {
    const chunk = 1024 * 1024;
    for (let i = 0; i < body.length && !stopped && !req.destroyed; i += chunk) {
      req.write(body.subarray(i, i + chunk));
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!stopped && !req.destroyed) req.end();
  })();
  return {
    stop() {
      stopped = true;
      req.destroy();
    },
    done,
  };
}

async function tmpSizes(dataDir: string): Promise<number[]> {
  const names = await readdir(join(dataDir, 'tmp'));
  return Promise.all(names.map(async (n) => (await stat(join(dataDir, 'tmp', n)).catch(() => ({ size: 0 }))).size));
}

it('kill -9 mid-PUT leaves no partial fragment; the restarted datanode is clean', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-dn-crash-'));
  dirs.push(dataDir);
  const first = await startDatanodeProcess({ dataDir, secret: SECRET });
  const client = datanodeClient(first.url, SECRET);

  const confirmed = randomBytes(1024 * 1024);
  expect((await client.put('survivor', confirmed)).status).toBe(201);

  // Two writes in flight at the kill: a new id, and a replacement of a confirmed fragment.
  const big = 32 * 1024 * 1024;
  const newcomer = slowPut(first.url, 'newcomer', randomBytes(big));
  const replacement = slowPut(first.url, 'survivor', randomBytes(big));
  const bothWriting = async () => {
    const sizes = await tmpSizes(dataDir);
    return sizes.length === 2 && sizes.every((s) => s > 0);
  };
  await until(bothWriting, () => `two temp files being written; stderr:\n${first.stderr()}`, 10_000);
  first.kill('SIGKILL');
  expect((await first.exited).signal).toBe('SIGKILL');
  newcomer.stop();
  replacement.stop();
  await Promise.all([newcomer.done, replacement.done]);

  // Straight after the crash, before any cleanup: partial writes exist only in tmp/.
  const leftovers = await tmpSizes(dataDir);
  expect(leftovers.length).toBe(2);
  for (const size of leftovers) expect(size).toBeLessThan(big);
  expect(await readdir(join(dataDir, 'fragments'))).toEqual(['survivor']);
  expect((await readFile(join(dataDir, 'fragments', 'survivor'))).equals(confirmed)).toBe(true);

  const second = await startDatanodeProcess({ dataDir, secret: SECRET });
  const after = datanodeClient(second.url, SECRET);
  expect(await readdir(join(dataDir, 'tmp'))).toEqual([]);
  expect((await after.get('newcomer')).status).toBe(404);
  const survivor = await after.get('survivor');
  expect(survivor.status).toBe(200);
  expect(survivor.body.equals(confirmed)).toBe(true);
  expect((await after.list()).json<FragmentListing[]>()).toEqual([{ id: 'survivor', size: confirmed.length }]);
  expect((await after.health()).json<DatanodeHealthReport>()).toMatchObject({
    fragmentCount: 1,
    storedBytes: confirmed.length,
  });
  expect((await second.stop()).code).toBe(0);
});
