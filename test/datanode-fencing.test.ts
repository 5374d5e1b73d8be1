// Fencing at the datanode: a coordinator's background work sends its lease's token (signed) with
// each request; the datanode remembers the highest token seen, in its data dir, and refuses
// writes and deletes under an older one, so a former leader that wakes up mid-pass cannot delete
// what the new leader placed. Requests outside background work carry no token and are obeyed as
// before; a token cannot be forged, raised or stripped without the secret. Real datanode process.
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatanodeClient, DatanodeHttpError, type DatanodeClient } from '../src/cluster/datanode-client.ts';
import { FENCE_HEADER, withFence } from '../src/shared/fence.ts';
import { CLUSTER_HEADER, NONCE_HEADER, SIGNED_SCHEME, TIME_HEADER, newNonce, requestSignature } from '../src/shared/request-signing.ts';
import { FENCE_FILE } from '../datanode/fence.ts';
import { startDatanodeProcess, type DatanodeProcess } from './support/datanode-process.ts';
import { rawRequest, sha256 } from './support/datanode-http.ts';

const SECRET = 'datanode-fencing-secret';
const CLUSTER = randomUUID();

let dir: string;
let node: DatanodeProcess;
let client: DatanodeClient;

const put = (id: string) => client.putFragment(node.url, id, Buffer.from(id), sha256(id));
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (err: unknown) => (err instanceof DatanodeHttpError ? err.code : String(err)),
  );

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-fencing-'));
  node = await startDatanodeProcess({ dataDir: join(dir, 'dn'), secret: SECRET });
  client = createDatanodeClient({ secret: SECRET, identity: { clusterId: () => CLUSTER, expectedNodeId: () => undefined } });
}, 60_000);

afterAll(async () => {
  client?.close();
  await node?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('a datanode fences background work by the lease token', () => {
  it('obeys the newest token and refuses writes and deletes under an older one, durably', async () => {
    for (const id of ['f1', 'f2', 'f3', 'f4']) await put(id);
    expect(await codeOf(withFence('5', () => client.deleteFragment(node.url, 'f1')))).toBe('ok');
    expect(await readFile(join(dir, 'dn', FENCE_FILE), 'utf8')).toBe('5\n');
    // A new leader (token 7) places a copy; the former one (token 5) wakes and tries to delete it.
    expect(await codeOf(withFence('7', () => put('f5')))).toBe('ok');
    expect(await codeOf(withFence('5', () => client.deleteFragment(node.url, 'f5')))).toBe('STALE_FENCE');
    expect(await codeOf(withFence('5', () => put('f6')))).toBe('STALE_FENCE');
    expect(await client.getFragment(node.url, 'f5')).toEqual(Buffer.from('f5'));
    // Reads under a stale token are harmless and answered.
    expect(await codeOf(withFence('5', () => client.getFragment(node.url, 'f2')))).toBe('ok');
    // Work outside background passes (the API's) carries no token and is obeyed.
    expect(await codeOf(client.deleteFragment(node.url, 'f2'))).toBe('ok');

    // The highest token survives a restart.
    await node.stop();
    node = await startDatanodeProcess({ dataDir: join(dir, 'dn'), secret: SECRET });
    expect(await codeOf(withFence('6', () => client.deleteFragment(node.url, 'f3')))).toBe('STALE_FENCE');
    expect(await codeOf(withFence('7', () => client.deleteFragment(node.url, 'f3')))).toBe('ok');
  });

  it('learns a new leader from its health samples: from then on the former leader cannot delete', async () => {
    await put('h1');
    await withFence('9', () => client.health(node.url, 5000));
    expect(await readFile(join(dir, 'dn', FENCE_FILE), 'utf8')).toBe('9\n');
    // A stale token's health sample is still answered (the former leader is told by its refused writes).
    expect((await withFence('8', () => client.health(node.url, 5000))).nodeId).toBeDefined();
    expect(await codeOf(withFence('8', () => client.deleteFragment(node.url, 'h1')))).toBe('STALE_FENCE');
  });

  it('a token cannot be raised, stripped or malformed: the signature covers it', async () => {
    await put('s1');
    const signed = (fence: string | undefined, sentFence: string | undefined) => {
      const time = String(Date.now());
      const nonce = newNonce();
      const path = '/fragments/s1';
      const sig = requestSignature(SECRET, {
        method: 'DELETE',
        path,
        time,
        nonce,
        clusterId: CLUSTER,
        nodeId: '',
        contentSha256: '',
        fence,
      });
      const headers: Record<string, string> = {
        authorization: `${SIGNED_SCHEME} ${sig}`,
        [TIME_HEADER]: time,
        [NONCE_HEADER]: nonce,
        [CLUSTER_HEADER]: CLUSTER,
      };
      if (sentFence !== undefined) headers[FENCE_HEADER] = sentFence;
      return rawRequest(node.url, 'DELETE', path, { headers });
    };
    // Signed under the stale token 8, sent claiming 99: the signature no longer matches.
    expect((await signed('8', '99')).status).toBe(401);
    // Signed under 8, sent without the header (to pass as API work): refused too.
    expect((await signed('8', undefined)).status).toBe(401);
    const bad = await signed('x1', 'x1');
    expect(bad.status).toBe(400);
    expect(bad.json<{ code: string }>().code).toBe('INVALID_FENCE');
    expect(await client.getFragment(node.url, 's1')).toEqual(Buffer.from('s1'));
  });
});
