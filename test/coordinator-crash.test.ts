// kill -9 of a real coordinator process, restarted on the same data dir: an open upload resumes
// from upload(id).receivedFragments and completes byte-identical; only completed images are
// listed; a kill in the middle of many concurrent fragment writes leaves no half-recorded
// fragment, and the files of the interrupted writes are cleaned after the restart.
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_SECRET } from './support/cluster.ts';
import { startCoordinatorProcess, stopAllCoordinatorProcesses, type CoordinatorProcess } from './support/coordinator-process.ts';
import { startDatanodeProcess, stopAllDatanodeProcesses, type DatanodeProcess } from './support/datanode-process.ts';
import { codeOf, createGraphQLClient } from './support/graphql.ts';
import { BEGIN, bytesOf, COMPLETE, IMAGE, LIST, SEND, UPLOAD } from './support/images.ts';
import { until } from './support/poll.ts';

const FRAGMENT = 16 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const piece = (bytes: Buffer, i: number) => bytes.subarray(i * FRAGMENT, (i + 1) * FRAGMENT);

let dir: string;
let datanodes: DatanodeProcess[] = [];
let coordinator: CoordinatorProcess;
const gql = createGraphQLClient(() => coordinator.url);

async function startCoord(port = 0) {
  coordinator = await startCoordinatorProcess({
    dataDir: join(dir, 'coordinator'),
    secret: TEST_SECRET,
    port,
    args: ['--fragment-size', String(FRAGMENT), '--health-interval-ms', '200', ...datanodes.flatMap((d) => ['--datanode', d.url])],
  });
}

async function killAndRestart() {
  const port = coordinator.port;
  coordinator.kill('SIGKILL');
  expect((await coordinator.exited).signal).toBe('SIGKILL');
  await startCoord(port);
}

/** sha256 → number of fragment files with those bytes, over every datanode. */
async function filesByContent(): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < datanodes.length; i++) {
    const folder = join(dir, `datanode-${i}`, 'fragments');
    for (const name of await readdir(folder).catch(() => [] as string[])) {
      let bytes: Buffer;
      try {
        bytes = await readFile(join(folder, name));
      } catch {
        continue; // deleted while we looked
      }
      const h = sha256(bytes);
      counts.set(h, (counts.get(h) ?? 0) + 1);
    }
  }
  return counts;
}

const send = (uploadId: string, index: number, data: Buffer) => gql(SEND, { u: uploadId, i: index, d: data.toString('base64') });
const names = async () => ((await gql(LIST, { first: 1000 })).images.edges as { node: { name: string } }[]).map((e) => e.node.name);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-crash-'));
  datanodes = await Promise.all([0, 1, 2].map((i) => startDatanodeProcess({ dataDir: join(dir, `datanode-${i}`), secret: TEST_SECRET })));
  await startCoord();
}, 60_000);

afterAll(async () => {
  await stopAllCoordinatorProcesses();
  await stopAllDatanodeProcesses();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kill -9 of the coordinator', () => {
  it('after 3 of 6 fragments: the upload resumes from receivedFragments, completes byte-identical, and only completed images are listed', async () => {
    const before = bytesOf(2 * FRAGMENT + 5, 1);
    const b = (await gql(BEGIN, { i: { name: 'before.png', size: before.length } })).beginUpload;
    for (let i = 0; i < b.fragmentCount; i++) await send(b.id, i, piece(before, i));
    await gql(COMPLETE, { u: b.id });

    const bytes = bytesOf(6 * FRAGMENT, 2);
    const session = (await gql(BEGIN, { i: { name: 'resumed.png', size: bytes.length, sha256: sha256(bytes) } })).beginUpload;
    expect(session.fragmentCount).toBe(6);
    for (const i of [0, 1, 2]) await send(session.id, i, piece(bytes, i));
    const half = (await gql(BEGIN, { i: { name: 'never-completed.png', size: 2 * FRAGMENT } })).beginUpload;
    await send(half.id, 0, piece(bytesOf(2 * FRAGMENT, 3), 0));

    await killAndRestart();

    expect((await gql(UPLOAD, { u: session.id })).upload).toMatchObject({
      id: session.id,
      name: 'resumed.png',
      receivedFragments: [0, 1, 2],
    });
    expect(await names()).toEqual(['before.png']);
    expect(codeOf(await gql.request(BEGIN, { i: { name: 'resumed.png', size: 10 } }))).toBe('IMAGE_ALREADY_EXISTS');

    for (const i of [3, 4, 5]) await send(session.id, i, piece(bytes, i));
    const image = (await gql(COMPLETE, { u: session.id })).completeUpload;
    expect(image).toMatchObject({ name: 'resumed.png', size: bytes.length, sha256: sha256(bytes) });
    for (const f of image.fragments) expect(f.replicas).toHaveLength(2);

    const res = await fetch(`${coordinator.url}/images/resumed.png`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    const old = await fetch(`${coordinator.url}/images/before.png`);
    expect(Buffer.from(await old.arrayBuffer()).equals(before)).toBe(true);
    expect(await names()).toEqual(['before.png', 'resumed.png']);
    expect((await gql(IMAGE, { n: 'never-completed.png' })).image).toBeNull();
    expect((await gql(UPLOAD, { u: half.id })).upload.receivedFragments).toEqual([0]);
  });

  it('in the middle of many concurrent fragment writes: no half-recorded fragment, and the interrupted writes leave no file behind', async () => {
    const count = 160;
    const bytes = bytesOf(count * FRAGMENT, 4);
    const session = (await gql(BEGIN, { i: { name: 'busy.png', size: bytes.length } })).beginUpload;
    const acknowledged = new Set<number>();
    let killed = false;
    const queue = Array.from({ length: count }, (_, i) => i);
    const worker = async () => {
      for (let i = queue.shift(); i !== undefined && !killed; i = queue.shift()) {
        try {
          await send(session.id, i, piece(bytes, i));
          acknowledged.add(i);
          if (acknowledged.size === 20 && !killed) {
            killed = true;
            coordinator.kill('SIGKILL'); // while ~16 other writes are in flight
          }
        } catch {
          return; // the coordinator is gone
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(killed).toBe(true);
    await killAndRestart();

    const received: number[] = (await gql(UPLOAD, { u: session.id })).upload.receivedFragments;
    // The restarted coordinator found the intents of the writes in flight (15 others were).
    expect(coordinator.stderr()).toMatch(/cleaning replica writes interrupted/);
    // Every acknowledged fragment is recorded; a write cut short may be recorded or not, never half.
    for (const i of acknowledged) expect(received).toContain(i);
    expect(received.length).toBeLessThan(count);

    // Recorded fragments have both copies; interrupted ones end with none (their intents were
    // released at start and the deleter removed what reached the datanodes).
    const expectedCopies = (h: string, files: Map<string, number>) => files.get(h) ?? 0;
    await until(
      async () => {
        const files = await filesByContent();
        return Array.from({ length: count }, (_, i) => i).every(
          (i) => expectedCopies(sha256(piece(bytes, i)), files) === (received.includes(i) ? 2 : 0),
        );
      },
      'the datanodes to hold exactly the recorded fragments of busy.png',
      15_000,
    );

    const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !received.includes(i));
    const rest = [...missing];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = rest.shift(); i !== undefined; i = rest.shift()) await send(session.id, i, piece(bytes, i));
      }),
    );
    const image = (await gql(COMPLETE, { u: session.id })).completeUpload;
    expect(image.sha256).toBe(sha256(bytes));
    const res = await fetch(`${coordinator.url}/images/busy.png`);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);

    // Nothing else on the disks: every file is a replica of a fragment the index holds.
    const files = await filesByContent();
    const total = [...files.values()].reduce((a, b) => a + b, 0);
    expect(files.get(sha256(piece(bytes, 0)))).toBe(2);
    const stored = await Promise.all((await names()).map(async (n) => (await gql(IMAGE, { n })).image.fragments as { sha256: string }[]));
    const openUploadFiles = 2; // never-completed.png's fragment 0
    expect(total).toBe(stored.flat().length * 2 + openUploadFiles);
  });
});
