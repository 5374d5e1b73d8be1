// Ctrl-C during `tessera upload` leaves the upload resumable, and the same command run again
// sends only the missing fragments. A small proxy in front of the coordinator lets a set number
// of fragments through and then holds the rest, so the interrupt lands mid-upload every time.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCli, stopAllCli } from './support/cli-process.ts';
import { startCluster, type TestCluster } from './support/cluster.ts';

const FRAGMENTS = 64; // 4 MiB in the test cluster's 64 KiB fragments
const LET_THROUGH = 8;

let cluster: TestCluster;
let dir: string;
let proxy: ReturnType<typeof createHoldingProxy>;

/** Forwards to the coordinator; fragment requests (raw PUTs or multipart) past `allow` are held unanswered. */
function createHoldingProxy(target: () => string) {
  const state = { allow: Infinity, forwarded: 0, answered: 0, held: new Set<ServerResponse>() };
  let onAnswered = () => {};
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const isFragment =
      (req.method === 'PUT' && (req.url ?? '').startsWith('/uploads/')) ||
      (req.headers['content-type'] ?? '').startsWith('multipart/form-data');
    if (isFragment && state.forwarded >= state.allow) {
      state.held.add(res);
      res.on('close', () => state.held.delete(res));
      req.resume();
      return;
    }
    if (isFragment) state.forwarded++;
    const url = new URL(target());
    const upstream = http.request({ host: url.hostname, port: url.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
      up.on('end', () => {
        if (isFragment) {
          state.answered++;
          onAnswered();
        }
      });
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  return {
    state,
    server,
    url: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** Resolves once `n` fragment requests have been answered. */
    answered: (n: number) =>
      new Promise<void>((resolve) => {
        onAnswered = () => state.answered >= n && resolve();
        onAnswered();
      }),
  };
}

const tessera = (args: string[]) =>
  startCli(args, dir, { TESSERA_URL: proxy.url(), TESSERA_TOKEN: cluster.adminToken, TESSERA_STATE_DIR: join(dir, 'state') });

beforeAll(async () => {
  [cluster, dir] = await Promise.all([startCluster(), mkdtemp(join(tmpdir(), 'tessera-cli-resume-'))]);
  proxy = createHoldingProxy(() => cluster.url);
  await new Promise<void>((r) => proxy.server.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  await stopAllCli();
  proxy?.server.closeAllConnections();
  await new Promise((r) => proxy?.server.close(r));
  await cluster?.close();
  await rm(dir, { recursive: true, force: true });
});

it('SIGINT mid-upload leaves it resumable; the rerun sends only the missing fragments, byte-identical', async () => {
  const bytes = randomBytes(FRAGMENTS * 64 * 1024);
  await writeFile(join(dir, 'big.tiff'), bytes);

  proxy.state.allow = LET_THROUGH;
  const first = tessera(['upload', '--json', 'big.tiff']);
  await Promise.race([proxy.answered(LET_THROUGH), first.done]);
  first.child.kill('SIGINT');
  const interrupted = await first.done;
  expect(interrupted.code).toBe(130);
  expect(interrupted.stderr).toMatch(/^error ABORTED: /m);
  expect(interrupted.stderr).toMatch(/run the same command again to resume/);
  expect(JSON.parse(interrupted.stdout)).toEqual([
    expect.objectContaining({ name: 'big.tiff', error: expect.objectContaining({ code: 'ABORTED', uploadId: expect.any(String) }) }),
  ]);

  // Not visible yet, and its fragments kept.
  expect((await cluster.gql(`{ image(name: "big.tiff") { name } }`)).image).toBeNull();

  proxy.state.allow = Infinity;
  proxy.state.forwarded = 0;
  const second = await tessera(['upload', '--json', 'big.tiff']).done;
  expect(second.stderr).toBe('');
  expect(second.code).toBe(0);
  const [result] = JSON.parse(second.stdout);
  expect(result).toMatchObject({
    name: 'big.tiff',
    resumed: true,
    fragmentCount: FRAGMENTS,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  });
  expect(result.skippedFragments).toBeGreaterThanOrEqual(LET_THROUGH);
  expect(result.sentFragments).toBe(FRAGMENTS - result.skippedFragments);
  // What the CLI says it sent is what went over the wire.
  expect(proxy.state.forwarded).toBe(result.sentFragments);

  const res = await fetch(`${cluster.url}/images/big.tiff`);
  expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
  const ledger = JSON.parse(await readFile(join(dir, 'state', 'uploads.json'), 'utf8'));
  expect(ledger.uploads).toEqual([]);
});
