// A datanode's identity is its data dir, not its address: a random id kept in <dataDir>/node-id,
// reported (with a proof, to holders of the secret) by /health, so the coordinator recognises the
// same disks behind a new URL.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export const NODE_ID_FILE = 'node-id';

export async function loadNodeId(dataDir: string): Promise<string> {
  const file = path.join(dataDir, NODE_ID_FILE);
  try {
    const id = (await fs.readFile(file, 'utf8')).trim();
    if (id) return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomUUID();
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await fs.writeFile(tmp, id + '\n', { flush: true, mode: 0o600 });
  await fs.rename(tmp, file);
  return id;
}
