// docs/nginx.conf, run by a real nginx (Debian's package; skipped with the reason when it is not
// installed) in front of two upstreams, checked with the Tessera client and plain HTTP through
// it: chunked uploads of fragments larger than nginx's default body limit, downloads whole and
// by Range, subscriptions over graphql-ws and SSE, and the API still working after one upstream
// dies. First the two upstreams are one real coordinator reached directly and through a
// stand-in that dies like a killed process (no database server needed); then, with PostgreSQL
// (test/support/postgres.ts; skipped with the reason without it), two real coordinators on one
// database, one of them killed -9.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { findNginx, startNginx, stopAllNginx, type Nginx } from './support/nginx.ts';
import { startKillableProxy, type KillableProxy } from './support/killable-proxy.ts';
import { subscribe } from './support/subscriptions.ts';
import { postgresAvailable, useTestDatabase } from './support/postgres.ts';
import { startPgCluster, type PgCluster } from './support/pg-cluster.ts';
import { createTesseraClient, type ClusterEvent, type TesseraClient } from '../src/client/index.ts';

const FRAGMENT = 2 * 1024 * 1024; // above nginx's default client_max_body_size (1 MiB)
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const nginxFound = findNginx();
const STORED = 'subscription { clusterEvents { __typename ... on ImageStored { name } } }';

describe.skipIf(!nginxFound.bin)(
  `docs/nginx.conf in front of two upstreams${nginxFound.reason ? ` (skipped: ${nginxFound.reason})` : ''}`,
  () => {
    let cluster: TestCluster;
    let standIn: KillableProxy;
    let nginx: Nginx;
    let dir: string;
    let client: TesseraClient;
    const bearer = () => `Bearer ${cluster.adminToken}`;

    beforeAll(async () => {
      [cluster, dir] = await Promise.all([
        startCluster({ config: { fragmentSize: FRAGMENT } }),
        mkdtemp(join(tmpdir(), 'tessera-nginx-lb-')),
      ]);
      standIn = await startKillableProxy(cluster.url);
      nginx = await startNginx(nginxFound.bin!, [standIn.url, cluster.url]);
      client = createTesseraClient({ url: nginx.url, token: cluster.adminToken, stateDir: false });
    });
    afterAll(async () => {
      client?.close();
      await stopAllNginx();
      await standIn?.close();
      await cluster?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    async function uploadThrough(name: string, size: number) {
      const bytes = randomBytes(size);
      const path = join(dir, name);
      await writeFile(path, bytes);
      const result = await client.upload(path, { name, parallel: 3 });
      expect(result.image).toMatchObject({ name, size, sha256: sha256(bytes) });
      return bytes;
    }

    it('uploads chunked multipart fragments of 2 MiB and downloads them whole and by Range', async () => {
      const bytes = await uploadThrough('through-nginx.bin', 3 * FRAGMENT + 12345);
      const downloaded = Buffer.from(
        await (await fetch(`${nginx.url}/images/through-nginx.bin`, { headers: { authorization: bearer() } })).arrayBuffer(),
      );
      expect(downloaded.equals(bytes)).toBe(true);
      const part = await fetch(`${nginx.url}/images/through-nginx.bin`, {
        headers: { authorization: bearer(), range: `bytes=${FRAGMENT - 10}-${FRAGMENT + 9}` },
      });
      expect(part.status).toBe(206);
      expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(FRAGMENT - 10, FRAGMENT + 10))).toBe(true);
      // Both upstreams took part (round robin): the stand-in saw some of the requests.
      expect(standIn.log.length).toBeGreaterThan(0);
    });

    it('a one-shot upload of a whole 2 MiB image in one request', async () => {
      await uploadThrough('one-shot.bin', FRAGMENT);
    });

    it.each(['ws', 'sse'] as const)('delivers subscription events over %s', async (transport) => {
      const sub = await subscribe<ClusterEvent & { name?: string }>(transport, nginx.url, STORED, {}, { authorization: bearer() });
      try {
        // No acknowledgement says when the subscription is live: upload until one event arrives.
        for (let i = 0; ; i++) {
          expect(i).toBeLessThan(40);
          await client.upload(Readable.from([Buffer.from(`event ${i}`)]), { name: `${transport}-event-${i}`, size: `event ${i}`.length });
          const seen = await sub
            .waitFor((e) => e.__typename === 'ImageStored' && e.name === `${transport}-event-${i}`, 'ImageStored', 500)
            .then(
              () => true,
              () => false,
            );
          if (seen) break;
        }
      } finally {
        await sub.close();
      }
    });

    it('with one upstream dead, every kind of request still succeeds through the other', async () => {
      const before = await uploadThrough('before-kill.bin', FRAGMENT + 1);
      standIn.kill();
      // Round robin sends every other request to the dead one: nginx must pass each to the live one.
      for (let i = 0; i < 4; i++) {
        expect((await client.cluster()).fragmentSize).toBe(FRAGMENT);
        expect((await client.stat('before-kill.bin')).size).toBe(before.length);
        const res = await fetch(`${nginx.url}/images/before-kill.bin`, { headers: { authorization: bearer() } });
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(before)).toBe(true);
      }
      await uploadThrough('after-kill.bin', 2 * FRAGMENT + 7);
      expect((await client.list({ prefix: 'after-kill' })).images.map((i) => i.name)).toEqual(['after-kill.bin']);
    });
  },
);

const pg = await postgresAvailable();
const skipPg = nginxFound.reason ?? pg.reason;

describe.skipIf(skipPg !== undefined)(
  `docs/nginx.conf in front of two real coordinators on one PostgreSQL database${skipPg ? ` (skipped: ${skipPg})` : ''}`,
  () => {
    const db = useTestDatabase();
    let dir: string;
    let cluster: PgCluster;
    let nginx: Nginx;
    let client: TesseraClient;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'tessera-nginx-pg-'));
      cluster = await startPgCluster(dir, db.url, { count: 2, args: ['--fragment-size', String(FRAGMENT)] });
      nginx = await startNginx(
        nginxFound.bin!,
        cluster.coordinators.map((c) => c.url),
      );
      client = createTesseraClient({ url: nginx.url, token: cluster.token, stateDir: false });
    }, 120_000);
    afterAll(async () => {
      client?.close();
      await nginx?.stop();
      await cluster?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    const get = (name: string) => fetch(`${nginx.url}/images/${name}`, { headers: { authorization: `Bearer ${cluster.token}` } });

    it('upload, download and events through nginx; kill -9 of one coordinator leaves the API working through the other', async () => {
      const bytes = randomBytes(3 * FRAGMENT + 99);
      await writeFile(join(dir, 'pg-lb.bin'), bytes);
      // Round robin spreads this upload's requests over both coordinators.
      expect((await client.upload(join(dir, 'pg-lb.bin'), { parallel: 2 })).image.sha256).toBe(sha256(bytes));
      expect(Buffer.from(await (await get('pg-lb.bin')).arrayBuffer()).equals(bytes)).toBe(true);

      const sub = await subscribe<ClusterEvent & { name?: string }>(
        'ws',
        nginx.url,
        STORED,
        {},
        { authorization: `Bearer ${cluster.token}` },
      );
      try {
        for (let i = 0; ; i++) {
          expect(i).toBeLessThan(40);
          await client.upload(Readable.from([Buffer.from('pg event')]), { name: `pg-event-${i}`, size: 8 });
          const seen = await sub
            .waitFor((e) => e.name === `pg-event-${i}`, 'ImageStored', 500)
            .then(
              () => true,
              () => false,
            );
          if (seen) break;
        }
      } finally {
        await sub.close();
      }

      cluster.coordinators[0].kill('SIGKILL');
      await cluster.coordinators[0].exited;
      for (let i = 0; i < 4; i++) {
        expect((await client.stat('pg-lb.bin')).size).toBe(bytes.length);
        const res = await get('pg-lb.bin');
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
      }
      const after = randomBytes(2 * FRAGMENT + 5);
      await writeFile(join(dir, 'pg-after.bin'), after);
      expect((await client.upload(join(dir, 'pg-after.bin'))).image.sha256).toBe(sha256(after));
      expect(Buffer.from(await (await get('pg-after.bin')).arrayBuffer()).equals(after)).toBe(true);
    }, 120_000);
  },
);
