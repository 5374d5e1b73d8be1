// Which cluster this datanode belongs to: the id of the first coordinator cluster that signed a
// request to it, kept in <dataDir>/cluster-id. From then on it obeys only that cluster: a
// coordinator of another cluster, or one that lost its identity, cannot make it write or delete.
import fs from 'node:fs/promises';
import path from 'node:path';

export const CLUSTER_ID_FILE = 'cluster-id';

/** A cluster id as the coordinator mints it (a UUID), strict because it is stored and compared. */
export const CLUSTER_ID_PATTERN = /^[A-Za-z0-9-]{8,64}$/;

/** The persisted cluster id, or undefined before this datanode has joined a cluster. */
export async function loadClusterId(dataDir: string): Promise<string | undefined> {
  try {
    const id = (await fs.readFile(path.join(dataDir, CLUSTER_ID_FILE), 'utf8')).trim();
    return id === '' ? undefined : id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Joins `clusterId` for good: written durably (temp file, fsync, rename) before it is obeyed. */
export async function persistClusterId(dataDir: string, clusterId: string): Promise<void> {
  if (!CLUSTER_ID_PATTERN.test(clusterId)) throw new Error(`invalid cluster id ${JSON.stringify(clusterId.slice(0, 80))}`);
  const file = path.join(dataDir, CLUSTER_ID_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, clusterId + '\n', { flush: true, mode: 0o600 });
  await fs.rename(tmp, file);
}
