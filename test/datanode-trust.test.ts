// A server that answers at a datanode's URL without the cluster secret (claiming that datanode's
// node id) is never trusted with its entry: it is marked UNPROVEN and DOWN, no replica is
// recorded on it, registering it elsewhere does not move the real entry, and the coordinator
// never sends it the secret (every request is signed instead). Real datanode processes.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_ID_FILE } from '../datanode/identity.ts';
import { createDatanodeClient, UnprovenAnswerError } from '../src/cluster/datanode-client.ts';
import { freePortBlock } from '../src/launcher/ports.ts';
import { startDatanodeProcess, type DatanodeProcess } from './support/datanode-process.ts';
import { asCluster, startCoordinatorOver } from './support/coordinator-over.ts';
import { until } from './support/poll.ts';
import { bytesOf, download, uploadImage } from './support/images.ts';

const SECRET = 'datanode-trust-secret-do-not-leak';
const FRAGMENT = 32 * 1024;
const REGISTER = `mutation($url: String!) { registerDatanode(url: $url) { id url identityFault } }`;

let dir: string;
let base: number;
const nodes: DatanodeProcess[] = [];
const impostors: Server[] = [];
let coordinator: Awaited<ReturnType<typeof startCoordinatorOver>>;
const seen: { method: string; url: string; headers: IncomingMessage['headers'] }[] = [];

/** Answers like a datanode that stores everything: health with a stolen node id, 201 to every PUT. */
async function startImpostor(port: number, stolenNodeId: string): Promise<Server> {
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => {
      if (req.url === '/health') {
        const body = JSON.stringify({
          nodeId: stolenNodeId,
          clusterId: null,
          proof: '0'.repeat(64),
          cpuPercent: 1,
          memoryPercent: 1,
          diskPercent: 1,
          diskFreeBytes: 1e12,
          fragmentCount: 0,
          storedBytes: 0,
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      } else if (req.method === 'PUT') res.writeHead(201).end();
      else if (req.method === 'GET' && req.url === '/fragments') res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
      else res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  impostors.push(server);
  return server;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-trust-'));
  base = await freePortBlock(3);
  for (const i of [0, 1, 2]) nodes.push(await startDatanodeProcess({ dataDir: join(dir, `dn-${i}`), secret: SECRET, port: base + i }));
  coordinator = await startCoordinatorOver(
    nodes.map((n) => n.url),
    {
      secret: SECRET,
      replicationFactor: 2,
      fragmentSize: FRAGMENT,
      repairAfterSec: 3600,
      thresholds: { cpuPercent: 100, memoryPercent: 100, diskPercent: 100 },
    },
  );
}, 60_000);

afterAll(async () => {
  await coordinator?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all(impostors.map((s) => new Promise((r) => s.close(r))));
  await rm(dir, { recursive: true, force: true });
});

describe('datanode trust', () => {
  it("an impostor at a datanode's URL with its node id but not the secret takes nothing over and never receives the secret", async () => {
    const entries = coordinator.app.registry.all();
    const victim = entries.find((e) => e.url === nodes[0].url)!;
    const stolen = (await readFile(join(dir, 'dn-0', NODE_ID_FILE), 'utf8')).trim();
    expect(victim.nodeId).toBe(stolen);

    await nodes[0].stop();
    await startImpostor(base, stolen);
    await until(
      () => /^UNPROVEN/.test(coordinator.app.registry.get(victim.id)?.identityFault ?? ''),
      'the impostor marked UNPROVEN',
      15_000,
    );
    expect(coordinator.app.registry.get(victim.id)!.status).toBe('DOWN');

    // Uploads go to the two real datanodes only; the impostor's 201s are never taken for a copy.
    const png = bytesOf(4 * FRAGMENT, 21);
    const image = await uploadImage(asCluster(coordinator), 'trust/one.png', png, 'image/png');
    for (const f of image.fragments) expect(f.replicas.map((r) => r.id)).not.toContain(victim.id);
    expect((await download(asCluster(coordinator), 'trust/one.png')).body.equals(png)).toBe(true);

    // Even asked directly, the client refuses an answer that carries no proof.
    const client = createDatanodeClient({
      secret: SECRET,
      identity: { clusterId: () => coordinator.app.clusterIdentity.current(), expectedNodeId: () => stolen },
    });
    try {
      const data = Buffer.from('x');
      await expect(
        client.putFragment(nodes[0].url, 'some-fragment', data, '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881'),
      ).rejects.toBeInstanceOf(UnprovenAnswerError);
    } finally {
      client.close();
    }

    // Registered under another URL with the stolen id, it gets an entry of its own, untrusted;
    // the real datanode's entry stays where it was.
    const elsewhere = await startImpostor(0, stolen);
    const elsewhereUrl = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}`;
    const { registerDatanode } = await coordinator.gql(REGISTER, { url: elsewhereUrl }, { authorization: `Bearer ${SECRET}` });
    expect(registerDatanode.id).not.toBe(victim.id);
    expect(coordinator.app.registry.get(victim.id)!.url).toBe(victim.url);
    expect(registerDatanode.identityFault).toMatch(/^UNPROVEN/);

    // The secret never went to either impostor: requests are signed, not carrying it.
    expect(seen.length).toBeGreaterThan(0);
    for (const r of seen) expect(JSON.stringify(r.headers)).not.toContain(SECRET);
    expect(seen.some((r) => r.headers.authorization?.startsWith('Tessera-HMAC-SHA256 '))).toBe(true);

    // The real datanode back at its URL proves itself and is trusted again.
    await new Promise((r) => impostors[0].close(r));
    nodes[0] = await startDatanodeProcess({ dataDir: join(dir, 'dn-0'), secret: SECRET, port: base });
    await until(
      () => coordinator.app.registry.get(victim.id)?.identityFault === null && coordinator.app.registry.isLive(victim.id),
      'the real datanode trusted again',
      15_000,
    );
  }, 90_000);
});
