// A GET /images/{name} whose client checks the body against the ETag itself
// (X-Tessera-Client-Checks: sha256, as the `tessera` client sends it): the coordinator does not
// hash the fragments again, but still passes over a replica whose datanode reports another hash
// of the file it read, or the wrong size; the client fetches once more, without the header, when
// the bytes do not match.
import http from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { corruptReplica, fragmentsOf, watchEvents } from './support/faults.ts';
import { bytesOf, download, sha256, uploadImage } from './support/images.ts';
import { createTesseraClient } from '../src/client/index.ts';
import { CLIENT_CHECKS_HEADER } from '../src/image-paths.ts';

const FRAGMENT = 16 * 1024;
const CHECKS = { [CLIENT_CHECKS_HEADER]: 'sha256' };
let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  [cluster, dir] = await Promise.all([
    startCluster({ config: { fragmentSize: FRAGMENT, repairAfterSec: 3600 } }),
    mkdtemp(join(tmpdir(), 'tessera-client-checks-')),
  ]);
});
afterAll(async () => {
  await cluster?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Makes every fragment answer of the datanodes arrive with one byte changed after the datanode hashed it (as on a bad wire). */
function alterFragmentAnswers() {
  const client = cluster.app.client;
  const real = client.getFragmentChunks!.bind(client);
  return vi.spyOn(client, 'getFragmentChunks').mockImplementation(async (url, id, onHead) => {
    const chunks = await real(url, id, onHead);
    if (!chunks) return chunks;
    const copy = Buffer.concat(chunks);
    copy[0] ^= 0xff;
    return [copy];
  });
}

describe('GET /images/{name} with X-Tessera-Client-Checks: sha256', () => {
  it('does not hash the fragments again: only the header makes bytes the datanode did not hash reach the client', async () => {
    const bytes = bytesOf(3 * FRAGMENT + 5, 3);
    await uploadImage(cluster, 'checks/altered.bin', bytes);
    const altered = alterFragmentAnswers();
    try {
      const unchecked = await download(cluster, 'checks/altered.bin', CHECKS);
      expect(unchecked.res.status).toBe(200);
      expect(unchecked.res.headers.get('etag')).toBe(`"${sha256(bytes)}"`);
      expect(unchecked.body.length).toBe(bytes.length);
      expect(sha256(unchecked.body)).not.toBe(sha256(bytes)); // the client's own check is what catches it
      // Without the header the coordinator's hash refuses every such replica.
      const checked = await download(cluster, 'checks/altered.bin');
      expect(checked.res.status).toBe(503);
      expect(JSON.parse(checked.body.toString()).code).toBe('IMAGE_UNAVAILABLE');
    } finally {
      altered.mockRestore();
    }
  });

  it('ignores the header on a range request: a partial body cannot be checked against the ETag', async () => {
    const bytes = bytesOf(3 * FRAGMENT + 11, 6);
    await uploadImage(cluster, 'checks/range.bin', bytes);
    const altered = alterFragmentAnswers();
    try {
      // The coordinator hashes every fragment it sends part of: an altered one is refused, header or not.
      const ranged = await download(cluster, 'checks/range.bin', { ...CHECKS, range: `bytes=${FRAGMENT - 10}-${FRAGMENT + 10}` });
      expect(ranged.res.status).toBe(503);
      expect(JSON.parse(ranged.body.toString()).code).toBe('IMAGE_UNAVAILABLE');
    } finally {
      altered.mockRestore();
    }
    const whole = await download(cluster, 'checks/range.bin', { ...CHECKS, range: `bytes=${FRAGMENT - 10}-${FRAGMENT + 10}` });
    expect(whole.res.status).toBe(206);
    expect(whole.body.equals(bytes.subarray(FRAGMENT - 10, FRAGMENT + 11))).toBe(true);
  });

  it('answers Vary: X-Tessera-Client-Checks, so that a shared cache keeps the two kinds of answers apart', async () => {
    const bytes = bytesOf(FRAGMENT + 3, 7);
    await uploadImage(cluster, 'checks/vary.bin', bytes);
    const variants: Record<string, string>[] = [{}, CHECKS, { range: 'bytes=0-9' }];
    for (const headers of variants) {
      const { res } = await download(cluster, 'checks/vary.bin', headers);
      expect(res.headers.get('vary')).toBe('X-Tessera-Client-Checks');
    }
    const etag = `"${sha256(bytes)}"`;
    const notModified = await download(cluster, 'checks/vary.bin', { 'if-none-match': etag });
    expect(notModified.res.status).toBe(304);
    expect(notModified.res.headers.get('vary')).toBe('X-Tessera-Client-Checks');
  });

  it('still passes over a replica corrupted on disk (the datanode reports its hash) and has it repaired', async () => {
    const bytes = bytesOf(3 * FRAGMENT + 7, 4);
    await uploadImage(cluster, 'checks/disk.bin', bytes);
    const events = watchEvents(cluster.app);
    try {
      const victim = (await fragmentsOf(cluster, 'checks/disk.bin'))[1];
      for (const node of victim.holders.slice(0, 1)) await corruptReplica(cluster, node, victim.id);
      // Whichever replica is read first, the body is the image's.
      for (let i = 0; i < 3; i++) {
        const { res, body } = await download(cluster, 'checks/disk.bin', CHECKS);
        expect(res.status).toBe(200);
        expect(body.equals(bytes)).toBe(true);
      }
      const fault = await events.waitFor((e) => e.kind === 'ReplicaFault' && e.fragmentId === victim.id, 'ReplicaFault');
      expect(fault).toMatchObject({ reason: 'corrupt' });
    } finally {
      events.close();
    }
  });
});

describe('tessera download (the client library)', () => {
  it('asks the coordinator not to hash, and on bytes that do not match fetches again without asking, writing the right file', async () => {
    const bytes = bytesOf(4 * FRAGMENT + 9, 5);
    await uploadImage(cluster, 'checks/client.bin', bytes);
    // A proxy that changes one byte of the body when the client said it checks the bytes itself.
    const asked: boolean[] = [];
    const target = new URL(cluster.url);
    const proxy = http.createServer((req, res) => {
      const checks = req.headers[CLIENT_CHECKS_HEADER] === 'sha256';
      if (req.method === 'GET' && (req.url ?? '').startsWith('/images/')) asked.push(checks);
      const up = http.request(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode!, r.headers);
          let first = checks;
          r.on('data', (chunk: Buffer) => {
            if (first) chunk[0] ^= 0xff;
            first = false;
            res.write(chunk);
          });
          r.on('end', () => res.end());
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const client = createTesseraClient({
      url: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
      token: cluster.adminToken,
      stateDir: false,
    });
    try {
      const out = join(dir, 'client.bin');
      const result = await client.download('checks/client.bin', out);
      expect(result.sha256).toBe(sha256(bytes));
      expect((await readFile(out)).equals(bytes)).toBe(true);
      expect(asked).toEqual([true, false]);
    } finally {
      client.close();
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  });
});
