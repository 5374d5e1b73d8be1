// What the datanodes hold on disk (the truth an operator sees): the fragment files under each
// test datanode's `<dataDir>/fragments`, and a wait for the coordinator's replica deleter.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestCluster } from './cluster.ts';

export interface FragmentFile {
  /** Index of the test datanode (cluster.nodes[node]). */
  node: number;
  id: string;
  path: string;
}

async function filesOf(dataDir: string): Promise<string[]> {
  try {
    return (await readdir(join(dataDir, 'fragments'), { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Every fragment file on every datanode of the cluster. */
export async function fragmentFileList(cluster: Pick<TestCluster, 'nodes'>): Promise<FragmentFile[]> {
  const perNode = await Promise.all(
    cluster.nodes.map(async (n, node) => (await filesOf(n.dataDir)).map((id) => ({ node, id, path: join(n.dataDir, 'fragments', id) }))),
  );
  return perNode.flat();
}

/** Fragment id → the (sorted) indexes of the datanodes holding a file for it. */
export async function fragmentFiles(cluster: Pick<TestCluster, 'nodes'>): Promise<Map<string, number[]>> {
  const byId = new Map<string, number[]>();
  for (const f of await fragmentFileList(cluster)) byId.set(f.id, [...(byId.get(f.id) ?? []), f.node].sort());
  return byId;
}

/** SHA-256 of the file's bytes → the files holding them (fragment ids are not in the API; hashes are). */
export async function fragmentFilesBySha256(
  cluster: Pick<TestCluster, 'nodes'>,
): Promise<Map<string, (FragmentFile & { size: number })[]>> {
  const bySha = new Map<string, (FragmentFile & { size: number })[]>();
  for (const f of await fragmentFileList(cluster)) {
    let bytes: Buffer;
    try {
      bytes = await readFile(f.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted since it was listed
      throw err;
    }
    const sha = createHash('sha256').update(bytes).digest('hex');
    bySha.set(sha, [...(bySha.get(sha) ?? []), { ...f, size: bytes.length }]);
  }
  return bySha;
}

/** Coordinator datanode id of each test datanode (by URL), in cluster.nodes order. */
export function datanodeIds(cluster: TestCluster): string[] {
  const byUrl = new Map(cluster.app.registry.all().map((n) => [n.url, n.id]));
  return cluster.nodes.map((n) => byUrl.get(n.url.replace(/\/+$/, '')) ?? `unregistered:${n.url}`);
}

/** Resolves once the replica deleter has nothing due (every queued file deletion acknowledged). */
export async function settleDeletions(cluster: TestCluster, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await cluster.app.deleter.idle();
    if ((await cluster.app.catalog.pendingDeletionCount()) === 0) return;
    if (Date.now() > deadline)
      throw new Error(`${await cluster.app.catalog.pendingDeletionCount()} replica deletions still pending after ${timeoutMs} ms`);
    await cluster.app.deleter.kick();
    await new Promise((r) => setTimeout(r, 20));
  }
}
