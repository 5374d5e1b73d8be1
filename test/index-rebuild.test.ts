// Issue 8, with real processes: lose the coordinator's folder (npm start) or start a lone
// coordinator on a new empty data dir, and the index comes back from the datanodes' records:
// every stored image listed and byte-identical, an image deleted while a datanode was stopped
// stays deleted (its files go once every datanode is back), the open upload is cleanly gone,
// and no file of a stored image is ever deleted.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePortBlock, isRunning, startClusterProcess, type ClusterProcess } from './support/cluster-process.ts';
import { startCoordinatorProcess, type CoordinatorProcess } from './support/coordinator-process.ts';
import { startDatanodeProcess, type DatanodeProcess } from './support/datanode-process.ts';
import { createGraphQLClient } from './support/graphql.ts';
import { DELETE, beginUpload, dataOf, sendFragment, uploadChunked, uploadImage } from './support/images.ts';
import type { TestCluster } from './support/cluster.ts';
import { until } from './support/poll.ts';
import { dropMetadataFor } from './support/test-metadata.ts';

const FRAGMENT = 64 * 1024;
/** Reconciliation rounds this often: the files of the deleted image and the open upload go within a few. */
const RECONCILE_SEC = 2;
// A busy test machine must not make a datanode DEGRADED: placement would then skip it, and the
// scenario needs the stopped datanode to hold files of the deleted image.
const FLAGS = [
  '--fragment-size',
  String(FRAGMENT),
  '--orphan-grace',
  '5',
  '--reconcile-interval',
  String(RECONCILE_SEC),
  '--health-interval-ms',
  '200',
  '--down-after',
  '2',
  '--degraded-cpu',
  '100',
  '--degraded-memory',
  '100',
  '--degraded-disk',
  '100',
];
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dataDir: string;
let cluster: ClusterProcess | undefined;
let coordinator: CoordinatorProcess | undefined;
let datanodes: DatanodeProcess[] = [];
let baseUrl = '';
/** The images the first test stores and keeps: the second one finds them too. */
const keptByCluster = new Map<string, { bytes: Buffer; contentType: string }>();
const gql = createGraphQLClient(() => baseUrl);
/** The shape the image helpers want: a base URL and a GraphQL client. */
const target = {
  get url() {
    return baseUrl;
  },
  gql,
} as unknown as TestCluster;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'tessera-rebuild-'));
});
afterAll(async () => {
  await cluster?.stop();
  await coordinator?.stop();
  await Promise.all(datanodes.map((d) => d.stop()));
  await rm(dataDir, { recursive: true, force: true });
});

const datanodeDirs = () =>
  fs
    .readdirSync(dataDir)
    .filter((d) => d.startsWith('datanode-'))
    .sort()
    .map((d) => path.join(dataDir, d));

/** Every fragment file on every datanode: `${datanode}/${id}` -> sha256 of its bytes. */
function fragmentFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const dir of datanodeDirs()) {
    const fragments = path.join(dir, 'fragments');
    if (!fs.existsSync(fragments)) continue;
    for (const id of fs.readdirSync(fragments)) {
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(path.join(fragments, id));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted between the listing and the read
        throw err;
      }
      files.set(`${path.basename(dir)}/${id}`, sha(bytes));
    }
  }
  return files;
}

const piecesOf = (bytes: Buffer) =>
  new Set(Array.from({ length: Math.ceil(bytes.length / FRAGMENT) }, (_, i) => sha(bytes.subarray(i * FRAGMENT, (i + 1) * FRAGMENT))));
const filesOf = (files: Map<string, string>, bytes: Buffer) => {
  const pieces = piecesOf(bytes);
  return [...files].filter(([, h]) => pieces.has(h)).map(([f]) => f);
};

async function waitForLiveDatanodes(n: number) {
  await until(
    async () =>
      (await gql(`{ cluster { liveDatanodeCount } }`).catch(() => ({ cluster: { liveDatanodeCount: 0 } }))).cluster.liveDatanodeCount >= n,
    `${n} live datanodes`,
    60_000,
  );
}

async function listedNames(): Promise<string[]> {
  const { images } = await gql(`{ images(first: 1000) { edges { node { name } } } }`);
  return images.edges.map((e: { node: { name: string } }) => e.node.name).sort();
}

/** How many images are listed; -1 while the coordinator answers an error (INDEX_REBUILDING). */
async function listedCount(): Promise<number> {
  await new Promise((r) => setTimeout(r, 200));
  const res = await gql.request(`{ images { totalCount } }`).catch(() => undefined);
  return res?.data?.images?.totalCount ?? -1;
}

/** Every kept image is listed with its name, size, sha256 and type, and downloads byte-identical. */
async function expectImages(kept: Map<string, { bytes: Buffer; contentType: string }>) {
  expect(await listedNames()).toEqual([...kept.keys()].sort());
  for (const [name, { bytes, contentType }] of kept) {
    const { image } = await gql(`query($n: String!) { image(name: $n) { name size sha256 contentType url } }`, { n: name });
    expect(image).toMatchObject({ name, size: bytes.length, sha256: sha(bytes), contentType });
    const body = Buffer.from(await (await fetch(image.url)).arrayBuffer());
    expect(body.equals(bytes)).toBe(true);
  }
}

/**
 * Stores and deletes so the scenario holds: a deleted image with files on the datanode that is
 * stopped (the first of `dirs` holding some: placement may pass over a busy one), stored ones, an
 * open upload. Answers which of `dirs` was stopped.
 */
async function prepare(
  kept: Map<string, { bytes: Buffer; contentType: string }>,
  deletedName: string,
  stop: (index: number) => Promise<void>,
  dirs: string[],
) {
  const deleted = randomBytes(6 * FRAGMENT);
  await uploadChunked(target, deletedName, deleted, { contentType: 'image/png' });
  const files = filesOf(fragmentFiles(), deleted);
  const stopped = dirs.findIndex((dir) => files.some((f) => f.startsWith(`${path.basename(dir)}/`)));
  expect(stopped).toBeGreaterThanOrEqual(0); // some datanode holds its files

  await stop(stopped);
  expect(dataOf(await gql.request(DELETE, { n: deletedName })).deleteImage).toBe(true);
  kept.delete(deletedName);

  const open = randomBytes(2 * FRAGMENT);
  const session = await beginUpload(target, { name: `open/${deletedName}`, size: open.length });
  await sendFragment(target, session.id, 0, open.subarray(0, FRAGMENT));
  return { deleted, open, uploadId: session.id, stopped };
}

/** After the rebuild: the deleted image's and the open upload's files go, no kept file ever does. */
async function expectCleanedUp(keptFiles: string[], deleted: Buffer, open: Buffer, uploadId: string) {
  const { upload } = await gql(`query($u: ID!) { upload(id: $u) { id } }`, { u: uploadId });
  expect(upload).toBeNull(); // open uploads are gone after a rebuild: the client begins again
  await until(
    () => {
      const files = fragmentFiles();
      for (const f of keptFiles) if (!files.has(f)) throw new Error(`the file ${f} of a stored image was deleted`);
      return filesOf(files, deleted).length === 0 && filesOf(files, open).length === 0;
    },
    'the deleted image and the open upload leave every datanode',
    120_000,
  );
  // Two more reconciliation rounds: still nothing of a stored image goes.
  await new Promise((r) => setTimeout(r, (2 * RECONCILE_SEC + 1) * 1000));
  const files = fragmentFiles();
  for (const f of keptFiles) expect(files.has(f), f).toBe(true);
}

it(
  'npm start on the same --data-dir after its coordinator/ folder is removed: the index comes back from the datanodes',
  { timeout: 400_000 },
  async () => {
    const port = await freePortBlock(4);
    cluster = await startClusterProcess(dataDir, port, FLAGS);
    baseUrl = cluster.url;
    await waitForLiveDatanodes(3);

    const kept = new Map<string, { bytes: Buffer; contentType: string }>();
    const store = async (name: string, bytes: Buffer, contentType: string, chunked: boolean) => {
      if (chunked) await uploadChunked(target, name, bytes, { contentType });
      else await uploadImage(target, name, bytes, contentType);
      kept.set(name, { bytes, contentType });
    };
    await store('keep/multi.png', randomBytes(5 * FRAGMENT + 123), 'image/png', true);
    await store('keep/small.jpg', randomBytes(10_000), 'image/jpeg', false);
    await store('keep/two.bin', randomBytes(FRAGMENT + 7), 'application/octet-stream', false);
    kept.set('gone/deleted.png', { bytes: Buffer.alloc(0), contentType: '' });

    const { deleted, open, uploadId } = await prepare(
      kept,
      'gone/deleted.png',
      async (index) => {
        const pid = cluster!.childPids()[`datanode-${index + 1}`];
        process.kill(pid, 'SIGTERM');
        await until(() => !isRunning(pid), `datanode-${index + 1} stopped`, 10_000);
      },
      datanodeDirs(),
    );
    const keptFiles = [...kept.values()].flatMap(({ bytes }) => filesOf(fragmentFiles(), bytes));
    expect(keptFiles.length).toBeGreaterThanOrEqual(2 * 8);

    expect(await cluster.stop()).toBe(0);
    fs.rmSync(path.join(dataDir, 'coordinator'), { recursive: true, force: true });
    await dropMetadataFor(dataDir); // on PostgreSQL the index is its database: lost too, a new empty one next start

    const started = Date.now();
    cluster = await startClusterProcess(dataDir, port, FLAGS);
    baseUrl = cluster.url;
    await until(async () => (await listedCount()) === kept.size, 'every stored image listed', 60_000 - (Date.now() - started));
    await expectImages(kept);
    await waitForLiveDatanodes(3);
    await expectCleanedUp(keptFiles, deleted, open, uploadId);
    expect(await cluster.stop()).toBe(0);
    cluster = undefined;
    for (const [n, v] of kept) keptByCluster.set(n, v);
  },
);

it('a lone coordinator on a new empty data dir rebuilds the index from the datanodes it is given', { timeout: 400_000 }, async () => {
  // The datanodes of the cluster above, as their own processes on their own data dirs.
  const secretFile = path.join(dataDir, 'cluster.secret');
  const ports = await freePortBlock(3);
  const dirs = datanodeDirs();
  datanodes = await Promise.all(
    dirs.map((dir, i) => startDatanodeProcess({ dataDir: dir, secretFile, port: ports + i, extraArgs: ['--health-interval-ms', '200'] })),
  );
  const secret = fs.readFileSync(secretFile, 'utf8').trim();
  const startLone = async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tessera-lone-'));
    coordinator = await startCoordinatorProcess({
      dataDir: dir,
      secret,
      args: [...FLAGS, ...datanodes.flatMap((d) => ['--datanode', d.url])],
      timeoutMs: 60_000,
    });
    baseUrl = coordinator.url;
    return dir;
  };

  const first = await startLone();
  // Rebuilt from the records alone: what the npm start cluster stored is all here.
  await until(async () => (await listedCount()) === 3, 'the three stored images listed', 60_000);
  await expectImages(keptByCluster);
  await waitForLiveDatanodes(3);

  // Its own round: store, delete one while a datanode is stopped, leave an upload open.
  const kept = new Map<string, { bytes: Buffer; contentType: string }>();
  for (const name of ['lone/a.png', 'lone/b.png']) {
    const bytes = randomBytes(3 * FRAGMENT + 1);
    await uploadChunked(target, name, bytes, { contentType: 'image/png' });
    kept.set(name, { bytes, contentType: 'image/png' });
  }
  kept.set('lone/deleted.png', { bytes: Buffer.alloc(0), contentType: '' });
  const { deleted, open, uploadId, stopped } = await prepare(
    kept,
    'lone/deleted.png',
    async (index) => {
      await datanodes[index].stop();
    },
    dirs,
  );
  const keptFiles = [...kept.values()].flatMap(({ bytes }) => filesOf(fragmentFiles(), bytes));

  await coordinator!.stop();
  datanodes[stopped] = await startDatanodeProcess({
    dataDir: dirs[stopped],
    secretFile,
    port: ports + stopped,
    extraArgs: ['--health-interval-ms', '200'],
  });
  const second = await startLone();
  await until(async () => (await listedCount()) === 5, 'five stored images listed', 60_000);
  await expectImages(new Map([...keptByCluster, ...kept]));
  await waitForLiveDatanodes(3);
  await expectCleanedUp(keptFiles, deleted, open, uploadId);

  await coordinator!.stop();
  coordinator = undefined;
  await Promise.all(datanodes.map((d) => d.stop()));
  datanodes = [];
  await Promise.all([first, second].map((d) => rm(d, { recursive: true, force: true })));
});
