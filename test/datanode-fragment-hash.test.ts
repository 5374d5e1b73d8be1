// A datanode's GET /fragments/{id} answers X-Content-SHA256 as the hash of the bytes it read
// from disk for this answer, never a hash remembered from the write. The coordinator relies on
// it: for a client that checks the body itself (X-Tessera-Client-Checks: sha256) it skips its own
// hash of each fragment and compares this header with the index, so a replica corrupted on disk
// must show here. Real in-process datanode, the file corrupted on disk.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { createDatanode } from '../datanode/server.ts';
import { createDatanodeClient } from '../src/cluster/datanode-client.ts';

const SECRET = 'fragment-hash-secret';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The one file named `name` under `dir`. */
async function findFile(dir: string, name: string): Promise<string> {
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (entry.isFile() && entry.name === name) return join(entry.parentPath, entry.name);
  throw new Error(`no file ${name} under ${dir}`);
}

it('answers the hash of the bytes it read from disk, not the stored one, for a replica corrupted on disk', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-fragment-hash-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const node = await createDatanode({ dataDir, secret: SECRET });
  const { url } = await node.listen(0, '127.0.0.1');
  cleanups.push(() => node.close());
  const client = createDatanodeClient({
    secret: SECRET,
    identity: { clusterId: () => 'cluster-hash-test', expectedNodeId: () => undefined },
  });
  cleanups.push(async () => client.close());

  const bytes = Buffer.alloc(4096, 7);
  await client.putFragment(url, 'frag-1', bytes, sha256(bytes));
  const file = await findFile(dataDir, 'frag-1');
  const corrupt = await readFile(file);
  corrupt[100] ^= 0xff;
  await writeFile(file, corrupt);

  let answered: string | undefined;
  const chunks = await client.getFragmentChunks!(url, 'frag-1', (hash) => (answered = hash));
  expect(Buffer.concat(chunks!)).toEqual(corrupt);
  expect(answered).toBe(sha256(corrupt));
  expect(answered).not.toBe(sha256(bytes));
});
