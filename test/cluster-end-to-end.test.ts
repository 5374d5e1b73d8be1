// The whole system as `npm start` runs it: real processes, a real multi-fragment PNG uploaded
// and downloaded byte-identical, stored exactly twice on disk, then found again after a restart.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createGraphQLClient } from './support/graphql.ts';
import { freePortBlock, isRunning, startClusterProcess, type ClusterProcess } from './support/cluster-process.ts';
import { makePng } from './support/png.ts';

let dataDir: string;
let cluster: ClusterProcess | undefined;
const gql = createGraphQLClient(() => cluster!.url);

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'tessera-e2e-'));
});
afterAll(async () => {
  await cluster?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

const fragmentFiles = () =>
  fs
    .readdirSync(dataDir)
    .filter((d) => d.startsWith('datanode-'))
    .flatMap((d) => {
      const dir = path.join(dataDir, d, 'fragments');
      return fs.existsSync(dir) ? fs.readdirSync(dir).map((id) => ({ datanode: d, id })) : [];
    });

/** Until the coordinator counts `n` datanodes live. */
const waitForLiveDatanodes = (n: number) =>
  expect
    .poll(async () => (await gql(`{ cluster { liveDatanodeCount } }`)).cluster.liveDatanodeCount, { timeout: 20_000, interval: 200 })
    .toBeGreaterThanOrEqual(n);

it('stores a multi-fragment PNG across real processes and finds it again after restarts', { timeout: 120_000 }, async () => {
  const port = await freePortBlock(4);
  cluster = await startClusterProcess(dataDir, port, ['--fragment-size', String(1024 * 1024)]);
  expect(fs.statSync(path.join(dataDir, 'cluster.secret')).mode & 0o777).toBe(0o600);
  await waitForLiveDatanodes(3);

  const png = makePng(3_500_000);
  const sha256 = createHash('sha256').update(png).digest('hex');
  const { beginUpload } = await gql(`mutation($i: BeginUploadInput!) { beginUpload(input: $i) { id fragmentSize fragmentCount } }`, {
    i: { name: 'e2e/noise.png', size: png.length, contentType: 'image/png', sha256 },
  });
  expect(beginUpload.fragmentCount).toBeGreaterThanOrEqual(3);
  for (let i = 0; i < beginUpload.fragmentCount; i++) {
    const part = png.subarray(i * beginUpload.fragmentSize, (i + 1) * beginUpload.fragmentSize);
    const res = await gql.multipart(
      `mutation($u: ID!, $i: Int!, $f: File) { uploadFragment(uploadId: $u, index: $i, file: $f) { index } }`,
      { u: beginUpload.id, i, f: null },
      { 'variables.f': { data: part } },
    );
    expect(res.errors).toBeUndefined();
  }
  const { completeUpload } = await gql(`mutation($u: ID!) { completeUpload(uploadId: $u) { sha256 url fragments { replicas { url } } } }`, {
    u: beginUpload.id,
  });
  expect(completeUpload.sha256).toBe(sha256);

  const download = async () => Buffer.from(await (await fetch(completeUpload.url)).arrayBuffer());
  expect((await download()).equals(png)).toBe(true);

  // Every fragment is a file on exactly two different datanodes, and nothing else is stored.
  const files = fragmentFiles();
  expect(files).toHaveLength(beginUpload.fragmentCount * 2);
  const holders = new Map<string, Set<string>>();
  for (const f of files) holders.set(f.id, (holders.get(f.id) ?? new Set()).add(f.datanode));
  expect(holders.size).toBe(beginUpload.fragmentCount);
  for (const nodes of holders.values()) expect(nodes.size).toBe(2);

  // Ctrl-C stops every process.
  const pids = Object.values(cluster.childPids());
  expect(pids).toHaveLength(4);
  expect(await cluster.stop()).toBe(0);
  for (const pid of pids) expect(isRunning(pid)).toBe(false);

  cluster = await startClusterProcess(dataDir, port, ['--fragment-size', String(1024 * 1024)]);
  await waitForLiveDatanodes(3);
  const { images } = await gql(`{ images { totalCount edges { node { name sha256 url } } } }`);
  expect(images.totalCount).toBe(1);
  expect(images.edges[0].node.sha256).toBe(sha256);
  const again = Buffer.from(await (await fetch(images.edges[0].node.url)).arrayBuffer());
  expect(again.equals(png)).toBe(true);

  // On other ports the datanodes are recognised by their data dirs, not their old URLs.
  expect(await cluster.stop()).toBe(0);
  cluster = await startClusterProcess(dataDir, await freePortBlock(4), ['--fragment-size', String(1024 * 1024)]);
  await waitForLiveDatanodes(3);
  const { datanodes } = await gql(`{ datanodes { id status } }`);
  expect(datanodes).toHaveLength(3);
  const { image } = await gql(`query($n: String!) { image(name: $n) { url } }`, { n: 'e2e/noise.png' });
  expect(image.url.startsWith(cluster.url)).toBe(true);
  const moved = Buffer.from(await (await fetch(image.url)).arrayBuffer());
  expect(moved.equals(png)).toBe(true);
});
