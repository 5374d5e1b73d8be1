// The scrubber: a replica rotted on disk (one flipped bit) is found without any client read,
// reported as a ReplicaFault event and rewritten from the good copy.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { auditDisks, flipBit, fragmentPath, fragmentsOf, watchEvents } from './support/faults.ts';
import { bytesOf, sliceOf, uploadImage } from './support/images.ts';

const FRAGMENT = 16 * 1024;
let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ datanodes: 3, config: { fragmentSize: FRAGMENT, scrubBytesPerSec: 64 * 1024 * 1024, scrubPauseSec: 0 } });
});
afterAll(() => cluster?.close());

describe('scrubber', () => {
  it('finds a bit-flipped replica without any client read, reports it and repairs it', async () => {
    const bytes = bytesOf(4 * FRAGMENT + 10, 1);
    await uploadImage(cluster, 'rot.png', bytes);
    const events = watchEvents(cluster.app);
    const victim = (await fragmentsOf(cluster, 'rot.png'))[3];
    const node = victim.holders[1];
    await flipBit(cluster, node, victim.id, 8 * 1000 + 3);

    const fault = await events.waitFor((e) => e.kind === 'ReplicaFault' && e.fragmentId === victim.id, 'ReplicaFault');
    expect(fault).toMatchObject({ reason: 'corrupt' });
    expect((fault as { datanode: { url: string } }).datanode.url).toBe(cluster.nodes[node].url);
    const repaired = await events.waitFor((e) => e.kind === 'ReplicaRepaired' && e.fragmentId === victim.id, 'ReplicaRepaired');
    expect(repaired).toMatchObject({ reason: 'corrupt' });
    events.close();

    expect((await readFile(fragmentPath(cluster, node, victim.id))).equals(sliceOf(bytes, FRAGMENT, 3))).toBe(true);
    expect(await auditDisks(cluster)).toMatchObject({ orphans: [], bad: [] });
    // Only that replica was at fault (a pass may see it again before the repair lands).
    const faults = events.received.filter((e) => e.kind === 'ReplicaFault') as { fragmentId: string; datanode: { url: string } }[];
    expect(new Set(faults.map((f) => `${f.fragmentId}@${f.datanode.url}`))).toEqual(new Set([`${victim.id}@${cluster.nodes[node].url}`]));
  });
});
