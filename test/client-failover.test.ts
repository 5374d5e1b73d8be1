// Clients given several coordinator URLs, without PostgreSQL: one real coordinator behind
// proxies that stand in for "other coordinators" and die the way a killed process does (every
// connection reset, new ones refused). The upload moves to the next URL and asks it which
// fragments it has, the download continues by Range, the subscription reconnects, a proxy's 502
// moves on while an application error does not, a coordinator cut from its database is left for
// the retry, and the CLI refuses a malformed list (exit 2).
// The same with real coordinators on one PostgreSQL database: test/failover-postgres.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { runCli, stopAllCli } from './support/cli-process.ts';
import { refusingUrl, startKillableProxy, type KillableProxy } from './support/killable-proxy.ts';
import { createTesseraClient, TesseraClientError, type ClusterEvent } from '../src/client/index.ts';

const FRAGMENT = 64 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let cluster: TestCluster;
let dir: string;
const proxies: KillableProxy[] = [];
const servers: http.Server[] = [];

beforeAll(async () => {
  [cluster, dir] = await Promise.all([startCluster(), mkdtemp(join(tmpdir(), 'tessera-client-failover-'))]);
});
afterAll(async () => {
  await stopAllCli();
  await Promise.all(proxies.map((p) => p.close()));
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await cluster?.close();
  await rm(dir, { recursive: true, force: true });
});

const proxy = async () => {
  const p = await startKillableProxy(cluster.url);
  proxies.push(p);
  return p;
};
const clientOf = (url: string[], extra: Parameters<typeof createTesseraClient>[0] = {}) =>
  createTesseraClient({ url, token: cluster.adminToken, stateDir: join(dir, 'state'), ...extra });

async function fileOf(name: string, size: number) {
  const bytes = randomBytes(size);
  await writeFile(join(dir, name), bytes);
  return { path: join(dir, name), bytes };
}

async function stored(name: string) {
  const res = await fetch(`${cluster.url}/images/${encodeURIComponent(name)}`, {
    headers: { authorization: `Bearer ${cluster.adminToken}` },
  });
  return Buffer.from(await res.arrayBuffer());
}

describe('the client library', () => {
  it('an upload whose coordinator dies mid-way finishes on the next, sending only what that one lacks', async () => {
    const first = await proxy();
    const second = await proxy();
    const { path, bytes } = await fileOf('failover.bin', 48 * FRAGMENT);
    const client = clientOf([first.url, second.url]);
    try {
      const uploading = client.upload(path, { parallel: 4 });
      await first.fragmentsAnswered(8);
      first.kill();
      const result = await uploading;
      expect(result.image).toMatchObject({ name: 'failover.bin', size: bytes.length, sha256: sha256(bytes) });
      // The second coordinator was asked what it had before fragments went to it.
      const asked = second.log.findIndex((r) => r.operation === 'Upload');
      const firstFragment = second.log.findIndex((r) => r.fragment);
      expect(asked).toBeGreaterThanOrEqual(0);
      expect(asked).toBeLessThan(firstFragment);
      // Nothing it already had was sent to it again.
      const sentToSecond = second.log.filter((r) => r.fragment).length;
      expect(sentToSecond).toBeLessThanOrEqual(48 - 8);
      expect(second.log.some((r) => r.operation === 'CompleteUpload')).toBe(true);
      expect(client.url).toBe(second.url);
    } finally {
      client.close();
    }
    expect((await stored('failover.bin')).equals(bytes)).toBe(true);
  });

  it('a download broken off by a dying coordinator continues from the next by Range, verified', async () => {
    const { path, bytes } = await fileOf('ranged.bin', 40 * FRAGMENT + 123);
    const uploader = clientOf([cluster.url]);
    await uploader.upload(path);
    uploader.close();

    const first = await proxy();
    const second = await proxy();
    first.cutBodiesAfter = 10 * FRAGMENT;
    const client = clientOf([first.url, second.url]);
    try {
      const out = join(dir, 'ranged.out');
      const result = await client.download('ranged.bin', out);
      expect(result).toMatchObject({ size: bytes.length, sha256: sha256(bytes) });
      expect((await readFile(out)).equals(bytes)).toBe(true);
      const resumed = second.log.find((r) => r.method === 'GET');
      expect(resumed?.range).toMatch(/^bytes=\d+-$/);
      expect(Number(/\d+/.exec(resumed!.range!)![0])).toBeGreaterThan(0);

      // The same into a stream.
      first.cutBodiesAfter = undefined;
      second.cutBodiesAfter = 5 * FRAGMENT;
      const chunks: Buffer[] = [];
      const sink = new (await import('node:stream')).Writable({
        write(chunk: Buffer, _enc, cb) {
          chunks.push(chunk);
          cb();
        },
      });
      const streamed = await client.downloadTo('ranged.bin', sink);
      expect(streamed.sha256).toBe(sha256(bytes));
      expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    } finally {
      client.close();
    }
  });

  it('a refused first URL costs nothing but the attempt: queries, uploads and downloads go to the next', async () => {
    const client = clientOf([await refusingUrl(), cluster.url]);
    try {
      const r = await client.upload(Readable.from([Buffer.from('small bytes')]), { name: 'refused-first', size: 11 });
      expect(r.image.name).toBe('refused-first');
      expect((await client.stat('refused-first')).size).toBe(11);
      expect(client.url).toBe(cluster.url);
    } finally {
      client.close();
    }
  });

  it("a proxy's 502 moves to the next coordinator; an application error does not", async () => {
    const hits = { gateway: 0, app: 0 };
    const gateway = http.createServer((_req, res) => {
      hits.gateway++;
      res.writeHead(502, { 'content-type': 'text/html' }).end('<html>502 Bad Gateway</html>');
    });
    const app = http.createServer((req, res) => {
      hits.app++;
      req.resume();
      res
        .writeHead(400, { 'content-type': 'application/graphql-response+json' })
        .end(JSON.stringify({ errors: [{ message: 'no such thing', extensions: { code: 'BAD_USER_INPUT' } }] }));
    });
    servers.push(gateway, app);
    await Promise.all([gateway, app].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    const at = (s: http.Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;

    const viaGateway = clientOf([at(gateway), cluster.url]);
    expect((await viaGateway.cluster()).fragmentSize).toBe(FRAGMENT);
    viaGateway.close();
    expect(hits.gateway).toBe(1);

    const viaApp = clientOf([at(app), cluster.url], { retry: { retries: 0 } });
    const err = await viaApp.cluster().catch((e) => e);
    viaApp.close();
    expect(err).toBeInstanceOf(TesseraClientError);
    expect(err.code).toBe('BAD_USER_INPUT');
    expect(hits.app).toBe(1);
  });

  it.each([
    ['METADATA_UNAVAILABLE (cut from its database)', 'databaseCut', 'cut-database'],
    ['CLUSTER_NOT_READY (no cluster id yet)', 'clusterNotReady', 'not-ready'],
  ] as const)('a coordinator answering %s is left: the retry goes to the next one', async (_what, flag, prefix) => {
    // A one-shot upload (multipart uploadImage) and a chunked one (PUT /uploads/…/fragments/…).
    for (const size of [1000, 6 * FRAGMENT]) {
      const cut = await proxy();
      cut[flag] = true;
      const { path, bytes } = await fileOf(`${prefix}-${size}.bin`, size);
      // Retried as often as the policy allows on the cut one, the upload would fail there.
      const client = clientOf([cut.url, cluster.url], { retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 1 } });
      try {
        const result = await client.upload(path, { parallel: 1 });
        expect(result.image.sha256).toBe(sha256(bytes));
        expect(client.url).toBe(cluster.url);
        expect(cut.log.filter((r) => r.fragment)).toHaveLength(1);
        expect((await stored(`${prefix}-${size}.bin`)).equals(bytes)).toBe(true);
      } finally {
        client.close();
      }
    }
  });

  it('a subscription reconnects to the next coordinator when its own dies', async () => {
    const first = await proxy();
    const client = clientOf([await refusingUrl(), first.url, cluster.url]);
    const events: ClusterEvent[] = [];
    const sub = client.subscribe((e) => events.push(e), { retryAttempts: 10 });
    try {
      await sub.ready; // through `first`: the refused one was skipped
      expect(first.log.some((r) => r.path.startsWith('/graphql'))).toBe(true);
      first.kill();
      const writer = clientOf([cluster.url]);
      try {
        // Events between the loss and the reconnection are not replayed: upload until one arrives.
        for (let i = 0; !events.some((e) => e.__typename === 'ImageStored'); i++) {
          expect(i).toBeLessThan(60);
          await writer.upload(Readable.from([Buffer.from('after')]), { name: `after-kill-${i}`, size: 5 });
          await new Promise((r) => setTimeout(r, 250));
        }
      } finally {
        writer.close();
      }
    } finally {
      sub.close();
      client.close();
    }
  });
});

describe('the CLI', () => {
  const tessera = (args: string[], env: Record<string, string> = {}) =>
    runCli(args, dir, { TESSERA_TOKEN: cluster.adminToken, TESSERA_STATE_DIR: join(dir, 'cli-state'), ...env });

  it('with the first URL refusing connections, uses the second (--url and TESSERA_URL)', async () => {
    const { bytes } = await fileOf('cli-failover.bin', 6 * FRAGMENT);
    const list = `${await refusingUrl()},${cluster.url}`;
    const up = await tessera(['--url', list, 'upload', '--json', 'cli-failover.bin']);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(JSON.parse(up.stdout)[0]).toMatchObject({ name: 'cli-failover.bin', sha256: sha256(bytes) });

    const down = await tessera(['download', 'cli-failover.bin', '-o', 'cli-failover.out'], { TESSERA_URL: list });
    expect(down.code).toBe(0);
    expect((await readFile(join(dir, 'cli-failover.out'))).equals(bytes)).toBe(true);
    const ls = await tessera(['ls', '--json', '--prefix', 'cli-failover'], { TESSERA_URL: list });
    expect(ls.code).toBe(0);
    expect(ls.stdout).toContain('cli-failover.bin');
  });

  it.each([
    ['--url', 'http://127.0.0.1:1,ftp://127.0.0.1:2', /must be http\(s\):\/\/… URLs, separated by commas \(got "ftp:\/\/127\.0\.0\.1:2"\)/],
    ['--url', 'http://127.0.0.1:1,,http://127.0.0.1:2', /has an empty entry/],
    ['--url', 'http://127.0.0.1:1,http://127.0.0.1:1/', /lists http:\/\/127\.0\.0\.1:1 twice/],
    ['TESSERA_URL', 'not a url', /must be http\(s\):\/\/… URLs/],
  ])('%s %s is a usage error (exit 2) and sends nothing', async (how, value, message) => {
    const r = how === 'TESSERA_URL' ? await tessera(['ls'], { TESSERA_URL: value }) : await tessera([how, value, 'ls']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error USAGE: /);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });
});
