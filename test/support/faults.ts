// Fault injection and observation for the self-repair tests: damage a replica file on disk,
// stop and restart an in-process datanode on its own dir and port, collect cluster events,
// and compare what the datanodes hold with what the index says.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClusterEvent } from '../../src/events.ts';
import type { Coordinator } from '../../src/coordinator.ts';
import { startDatanode, type TestCluster } from './cluster.ts';
import { datanodeIds, fragmentFileList } from './disk.ts';
import { until } from './poll.ts';
import { sha256 } from './images.ts';

export const fragmentPath = (cluster: TestCluster, node: number, fragmentId: string) =>
  join(cluster.nodes[node].dataDir, 'fragments', fragmentId);

/** Overwrites bytes in the middle of a replica file, keeping its size: silent corruption. */
export async function corruptReplica(cluster: TestCluster, node: number, fragmentId: string): Promise<void> {
  const file = fragmentPath(cluster, node, fragmentId);
  const bytes = await readFile(file);
  const at = Math.floor(bytes.length / 2);
  bytes.fill(0x5a, at, Math.min(at + 64, bytes.length));
  bytes[at] ^= 0xff; // never a no-op, whatever the bytes were
  await writeFile(file, bytes);
}

/** Flips one bit of a replica file. */
export async function flipBit(cluster: TestCluster, node: number, fragmentId: string, bit = 13): Promise<void> {
  const file = fragmentPath(cluster, node, fragmentId);
  const bytes = await readFile(file);
  bytes[Math.floor(bit / 8) % bytes.length] ^= 1 << (bit % 8);
  await writeFile(file, bytes);
}

export const removeReplicaFile = (cluster: TestCluster, node: number, fragmentId: string) => rm(fragmentPath(cluster, node, fragmentId));

/** Stops datanode `node` (its process-like server goes away; files stay). */
export async function stopDatanode(cluster: TestCluster, node: number): Promise<void> {
  await cluster.nodes[node].close();
}

/** Starts datanode `node` again on the same data dir and port: the coordinator sees the same datanode return. */
export async function restartDatanode(cluster: TestCluster, node: number): Promise<void> {
  const old = cluster.nodes[node];
  const port = Number(new URL(old.url).port);
  cluster.nodes[node] = await startDatanode(old.dataDir, undefined, old.index, port);
}

/** The index's view of a stored image: each fragment's id, hash and replica holders (test datanode indexes, in the order reads try them when all are live). */
export async function fragmentsOf(cluster: TestCluster, name: string) {
  const image = await cluster.app.catalog.imageByName(name);
  if (!image) throw new Error(`no stored image "${name}"`);
  const ids = datanodeIds(cluster);
  return (await cluster.app.catalog.fragmentsWithReplicas(image.id)).map((f) => ({
    id: f.id,
    idx: f.idx,
    sha256: f.sha256,
    holders: f.replicas.map((d) => ids.indexOf(d)),
  }));
}

/** Test datanode index → its coordinator status. */
export const statusOf = (cluster: TestCluster, node: number) => cluster.app.registry.get(datanodeIds(cluster)[node])?.status ?? null;

export const waitForStatus = (cluster: TestCluster, node: number, status: 'UP' | 'DOWN', timeoutMs = 10_000) =>
  until(() => statusOf(cluster, node) === status, `datanode ${node} ${status}`, timeoutMs);

/**
 * Every fragment file on disk checked against the index: files whose id no replica row names
 * (orphans) and replica rows without a good file (missing or corrupt). Both empty when the
 * datanodes hold exactly what the index says.
 */
export async function auditDisks(cluster: TestCluster) {
  const ids = datanodeIds(cluster);
  const files = await fragmentFileList(cluster);
  const expected = new Map<string, string>(); // `${node}:${fragmentId}` → sha256
  const rows = (await cluster.app.indexSql(
    'SELECT r.fragment_id AS id, r.datanode_id AS dn, f.sha256 FROM replicas r JOIN fragments f ON f.id = r.fragment_id',
  )) as { id: string; dn: string; sha256: string }[];
  for (const r of rows) expected.set(`${ids.indexOf(r.dn)}:${r.id}`, r.sha256);
  const orphans: string[] = [];
  const bad: string[] = [];
  const seen = new Set<string>();
  for (const f of files) {
    const key = `${f.node}:${f.id}`;
    seen.add(key);
    const want = expected.get(key);
    if (want === undefined) orphans.push(key);
    else if (sha256(await readFile(f.path)) !== want) bad.push(`${key} (corrupt)`);
  }
  for (const key of expected.keys()) if (!seen.has(key)) bad.push(`${key} (missing)`);
  return { orphans: orphans.sort(), bad: bad.sort(), files: files.length, replicas: rows.length };
}

/**
 * Test datanode indexes holding a file with each of these contents (by SHA-256). Tolerates files
 * deleted while it reads (the deleter runs meanwhile).
 */
export async function holdersByContent(cluster: TestCluster, contents: Buffer[]): Promise<number[][]> {
  const wanted = new Map(contents.map((c, i) => [sha256(c), i]));
  const out: number[][] = contents.map(() => []);
  for (const f of await fragmentFileList(cluster)) {
    let bytes: Buffer;
    try {
      bytes = await readFile(f.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const i = wanted.get(sha256(bytes));
    if (i !== undefined) out[i].push(f.node);
  }
  return out.map((nodes) => nodes.sort());
}

/** The fragments of `bytes` cut at `fragmentSize`. */
export const piecesOf = (bytes: Buffer, fragmentSize: number) =>
  Array.from({ length: Math.ceil(bytes.length / fragmentSize) }, (_, i) => bytes.subarray(i * fragmentSize, (i + 1) * fragmentSize));

/** Cluster events as they happen, to wait on (from the coordinator's own bus). */
export function watchEvents(app: Coordinator) {
  const received: ClusterEvent[] = [];
  const waiters = new Set<() => void>();
  const iterator = app.events.clusterEvents()[Symbol.asyncIterator]();
  void (async () => {
    for (;;) {
      const { value, done } = await iterator.next();
      if (done) return;
      received.push(value as ClusterEvent);
      waiters.forEach((w) => w());
    }
  })();
  return {
    received: received as readonly ClusterEvent[],
    /** The first event (past or future) that matches. */
    waitFor<E extends ClusterEvent = ClusterEvent>(match: (e: ClusterEvent) => boolean, what: string, timeoutMs = 15_000): Promise<E> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = received.find(match);
          if (!found) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found as E);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${what} within ${timeoutMs} ms; saw: ${received.map((e) => e.message).join(' | ')}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => void iterator.return?.(),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
