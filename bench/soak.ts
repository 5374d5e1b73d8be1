// The soak: a real cluster (4 datanodes, RF 2, --repair-after 20, small fragments)
// under continuous load (writers, readers, a deleter, a lister) while datanodes are killed
// (kill -9, relaunched on the same data dir and port) and one is frozen (SIGSTOP, SIGCONT).
// Reports client results, repair copies (ReplicaRepaired events over SSE) against replica writes
// by uploads, seconds with a fragment at a single live copy (index read-only, sampled every
// second, "live" = the datanode process is running and not stopped), and the datanodes' shares.
// Every image still stored at the end is downloaded and compared byte for byte (by SHA-256).
//
//   npx tsx bench/soak.ts [--minutes 12] [--kill-every 120] [--relaunch-after 40] [--stop-at <s>]
//                         [--stop-for 30] [--writers 4] [--readers 4] [--min-kib 100] [--max-kib 3072]
//                         [--fragment-size 262144] [--repair-after 20] [--keep-dir]
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import { freePortBlock } from '../src/launcher/ports.ts';
import { startServiceProcess, type ServiceProcess } from '../src/launcher/service-process.ts';
import { createHttp } from './http.ts';

const opts = new Command('bench-soak')
  .option('--minutes <n>', 'how long the load runs', Number, 12)
  .option('--kill-every <s>', 'seconds between two kill -9 of a datanode (rotating)', Number, 120)
  .option('--relaunch-after <s>', 'seconds a killed datanode stays dead', Number, 40)
  .option('--stop-at <s>', 'when one datanode is SIGSTOPped (default: 5/12 of the run)', Number)
  .option('--stop-for <s>', 'how long it stays stopped', Number, 30)
  .option('--writers <n>', 'concurrent writers', Number, 4)
  .option('--readers <n>', 'concurrent readers', Number, 4)
  .option('--min-kib <n>', 'smallest image (KiB)', Number, 100)
  .option('--max-kib <n>', 'largest image (KiB)', Number, 3072)
  .option('--fragment-size <bytes>', "the coordinator's --fragment-size", Number, 256 * 1024)
  .option('--repair-after <s>', "the coordinator's --repair-after", Number, 20)
  .option('--datanodes <n>', 'datanodes', Number, 4)
  .option('--replication-factor <n>', 'replicas per fragment', Number, 2)
  .option('--keep-dir', 'keep the data dir (its path is printed)', false)
  .parse()
  .opts<{
    minutes: number;
    killEvery: number;
    relaunchAfter: number;
    stopAt?: number;
    stopFor: number;
    writers: number;
    readers: number;
    minKib: number;
    maxKib: number;
    fragmentSize: number;
    repairAfter: number;
    datanodes: number;
    replicationFactor: number;
    keepDir: boolean;
  }>();

const DURATION_MS = opts.minutes * 60_000;
const STOP_AT_S = opts.stopAt ?? Math.round((opts.minutes * 60 * 5) / 12);
const R = opts.replicationFactor;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const elapsed = () => ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
const say = (line: string) => process.stderr.write(`[soak ${elapsed()} s] ${line}\n`);

// ---- processes: every child is ours to end, on any exit -------------------------------------
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-soak-'));
const live = new Set<ServiceProcess>();
function killAll() {
  for (const p of live) {
    try {
      p.child.kill('SIGCONT');
      p.child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
}
process.once('exit', () => {
  killAll();
  if (!opts.keepDir) fs.rmSync(dir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

interface Node {
  name: string;
  port: number;
  dataDir: string;
  url: string;
  proc?: ServiceProcess;
  running: boolean; // process alive and not stopped: the ground truth of "live"
}
const secretFile = path.join(dir, 'cluster.secret');
fs.writeFileSync(secretFile, randomBytes(32).toString('base64url') + '\n', { mode: 0o600 });
const quiet = () => true; // startServiceProcess's onLog answers like stderr.write

async function launch(node: Node) {
  const proc = await startServiceProcess(
    node.name,
    'datanode/main.ts',
    ['--port', String(node.port), '--data-dir', node.dataDir, '--health-interval-ms', '1000', '--secret-file', secretFile],
    { onLog: quiet },
  );
  live.add(proc);
  void proc.exited.then(() => live.delete(proc));
  node.proc = proc;
  node.url = proc.url;
  node.running = true;
}

// ---- figures --------------------------------------------------------------------------------
const stats = {
  uploads: 0,
  uploadedBytes: 0,
  uploadFragments: 0,
  reads: 0,
  readBytes: 0,
  deletes: 0,
  listings: 0,
  listedImages: 0,
  errors: {} as Record<string, number>,
  errorSamples: [] as string[],
};
function clientError(code: string, detail: string) {
  stats.errors[code] = (stats.errors[code] ?? 0) + 1;
  if (stats.errorSamples.length < 20) stats.errorSamples.push(`${elapsed()}s ${code}: ${detail.slice(0, 200)}`);
}
const repairs = { total: 0, byReason: {} as Record<string, number>, byTarget: {} as Record<string, number>, fragments: new Set<string>() };
// The coordinator's warnings are counted by message (a kill makes hundreds); errors are shown.
const coordinatorWarnings: Record<string, number> = {};
function countCoordinatorLog(line: string) {
  const level = Number(/"level":(\d+)/.exec(line)?.[1] ?? 0);
  if (level >= 50) say(`coordinator: ${line.slice(0, 400)}`);
  else if (level === 40) {
    const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? '?';
    coordinatorWarnings[msg] = (coordinatorWarnings[msg] ?? 0) + 1;
  }
}
const timeline: { at: number; event: string; node: string; heldFragments?: number }[] = [];

// The images that exist (as far as the clients know), with their SHA-256.
const images = new Map<string, { sha256: string; size: number }>();
const busy = new Set<string>(); // being read or deleted
const deletedAt = new Map<string, number>(); // name -> second of the run its deleteImage answered true
let stopping = false;

async function main() {
  const base = await freePortBlock(opts.datanodes);
  const nodes: Node[] = Array.from({ length: opts.datanodes }, (_, i) => ({
    name: `datanode-${i + 1}`,
    port: base + i,
    dataDir: path.join(dir, `datanode-${i + 1}`),
    url: '',
    running: false,
  }));
  await Promise.all(nodes.map(launch));
  const coordinatorDir = path.join(dir, 'coordinator');
  const tokenFile = path.join(dir, 'admin.token');
  const coordinator = await startServiceProcess(
    'coordinator',
    'src/main.ts',
    [
      '--port',
      '0',
      '--data-dir',
      coordinatorDir,
      '--secret-file',
      secretFile,
      '--admin-token-file',
      tokenFile,
      '--replication-factor',
      String(R),
      '--repair-after',
      String(opts.repairAfter),
      '--fragment-size',
      String(opts.fragmentSize),
      ...nodes.flatMap((n) => ['--datanode', n.url]),
    ],
    { onLog: (line: string) => (countCoordinatorLog(line), true) },
  );
  live.add(coordinator);
  void coordinator.exited.then(({ code, signal }) => {
    live.delete(coordinator);
    if (!stopping) {
      say(`the coordinator exited (code ${code}, signal ${signal})`);
      process.exit(1);
    }
  });
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  const api = createHttp(coordinator.url, 64, { authorization: `Bearer ${token}` });
  say(
    `cluster up in ${dir}: coordinator ${coordinator.url}, ${nodes.map((n) => n.url).join(' ')}; RF ${R}, --repair-after ${opts.repairAfter}, fragments ${opts.fragmentSize} B`,
  );

  // Repair copies, as the coordinator announces them.
  const events = subscribe(coordinator.url, token);

  // The index, read-only, for the per-second sample of live copies.
  const db = new Database(path.join(coordinatorDir, 'index.sqlite'), { readonly: true, fileMustExist: true });
  const replicaRows = db.prepare(
    `SELECT f.id AS fragment, i.name AS image, r.datanode_id AS node FROM fragments f JOIN images i ON i.id = f.image_id AND i.state = 'stored' LEFT JOIN replicas r ON r.fragment_id = f.id`,
  );
  const nodeUrls = db.prepare('SELECT id, url FROM datanodes');
  const heldBy = db.prepare(
    `SELECT count(*) AS n FROM replicas r JOIN fragments f ON f.id = r.fragment_id JOIN images i ON i.id = f.image_id AND i.state = 'stored' JOIN datanodes d ON d.id = r.datanode_id WHERE d.url = ?`,
  );
  const held = (n: Node) => (heldBy.get(n.url) as { n: number }).n;

  const sampling = {
    seconds: 0,
    secondsWithSingleLiveCopy: 0,
    secondsWithNoLiveCopy: 0,
    peakSingleLiveFraction: 0,
    peakSingleLive: 0,
    peakAt: 0,
    fragmentsAtPeak: 0,
    underReplicatedUnion: new Set<string>(), // fragments ever seen below R live copies
    secondsAbove50Percent: 0,
    secondsAbove60Percent: 0,
    noLiveCopyAt: [] as number[],
    noLiveCopySamples: [] as { atS: number; fragment: string; image: string; replicasInIndex: string[] }[],
  };
  const sampler = setInterval(() => {
    const byId = new Map((nodeUrls.all() as { id: string; url: string }[]).map((r) => [r.id, r.url]));
    const runningUrls = new Set(nodes.filter((n) => n.running).map((n) => n.url));
    const liveCopies = new Map<string, number>();
    const where = new Map<string, { image: string; nodes: string[] }>();
    const nameOf = new Map(nodes.map((n) => [n.url, n.name]));
    for (const row of replicaRows.iterate() as Iterable<{ fragment: string; image: string; node: string | null }>) {
      const url = row.node !== null ? (byId.get(row.node) ?? row.node) : '';
      const up = runningUrls.has(url) ? 1 : 0;
      liveCopies.set(row.fragment, (liveCopies.get(row.fragment) ?? 0) + up);
      const w = where.get(row.fragment) ?? { image: row.image, nodes: [] };
      if (row.node !== null) w.nodes.push(nameOf.get(url) ?? url);
      where.set(row.fragment, w);
    }
    const atS = Math.round((Date.now() - t0) / 1000);
    let single = 0;
    let none = 0;
    for (const [f, n] of liveCopies) {
      if (n <= 1) single++;
      if (n === 0) {
        none++;
        if (sampling.noLiveCopySamples.length < 10 && !sampling.noLiveCopySamples.some((x) => x.atS === atS))
          sampling.noLiveCopySamples.push({ atS, fragment: f, image: where.get(f)!.image, replicasInIndex: where.get(f)!.nodes });
      }
      if (n < R) sampling.underReplicatedUnion.add(f);
    }
    sampling.seconds++;
    if (single > 0) sampling.secondsWithSingleLiveCopy++;
    if (none > 0) {
      sampling.secondsWithNoLiveCopy++;
      sampling.noLiveCopyAt.push(atS);
    }
    const fraction = liveCopies.size ? single / liveCopies.size : 0;
    if (fraction > 0.5) sampling.secondsAbove50Percent++;
    if (fraction > 0.6) sampling.secondsAbove60Percent++;
    if (fraction > sampling.peakSingleLiveFraction)
      Object.assign(sampling, {
        peakSingleLiveFraction: fraction,
        peakSingleLive: single,
        peakAt: Math.round((Date.now() - t0) / 1000),
        fragmentsAtPeak: liveCopies.size,
      });
  }, 1000);

  // ---- the load ---------------------------------------------------------------------------
  const pool = randomBytes(opts.maxKib * 1024 + 64);
  const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];
  const codeOf = (err: unknown) => /GraphQL error (\S*):/.exec((err as Error).message)?.[1] || 'NETWORK';
  let seq = 0;

  async function writer(w: number) {
    while (!stopping) {
      const size = opts.minKib * 1024 + Math.floor(Math.random() * (opts.maxKib - opts.minKib) * 1024);
      const data = Buffer.from(pool.subarray(0, size));
      const name = `soak/w${w}-${seq++}.bin`;
      data.write(`${name}:${Date.now()}:`, 0); // distinct bytes per image
      const sha256 = createHash('sha256').update(data).digest('hex');
      try {
        const r = await api.graphqlMultipart<{ uploadImage: { sha256: string; fragmentCount: number } }>(
          'mutation($n: String!, $f: File!) { uploadImage(name: $n, file: $f, contentType: "application/octet-stream") { sha256 fragmentCount } }',
          { n: name },
          'f',
          data,
        );
        if (r.uploadImage.sha256 !== sha256) clientError('UPLOAD_HASH_MISMATCH', name);
        images.set(name, { sha256, size });
        stats.uploads++;
        stats.uploadedBytes += size;
        stats.uploadFragments += r.uploadImage.fragmentCount;
      } catch (err) {
        clientError(`upload:${codeOf(err)}`, (err as Error).message);
      }
    }
  }

  async function reader() {
    while (!stopping) {
      const names = [...images.keys()].filter((n) => !busy.has(n));
      if (names.length === 0) {
        await sleep(50);
        continue;
      }
      const name = pick(names);
      busy.add(name);
      try {
        const a = await api.request('GET', `/images/${name.split('/').map(encodeURIComponent).join('/')}`);
        if (a.status !== 200) clientError(`read:HTTP_${a.status}`, `${name}: ${a.body.toString('utf8').slice(0, 200)}`);
        else if (createHash('sha256').update(a.body).digest('hex') !== images.get(name)!.sha256) clientError('read:BYTES_DIFFER', name);
        else {
          stats.reads++;
          stats.readBytes += a.body.length;
        }
      } catch (err) {
        clientError('read:NETWORK', (err as Error).message);
      } finally {
        busy.delete(name);
      }
    }
  }

  // Deletes a random image whenever deletions are under 40% of uploads: the set keeps growing.
  async function deleter() {
    while (!stopping) {
      const names = [...images.keys()].filter((n) => !busy.has(n));
      if (stats.deletes >= stats.uploads * 0.4 || names.length === 0) {
        await sleep(50);
        continue;
      }
      const name = pick(names);
      busy.add(name);
      try {
        const r = await api.graphql<{ deleteImage: boolean }>('mutation($n: String!) { deleteImage(name: $n) }', { n: name });
        if (!r.deleteImage) clientError('delete:NOT_FOUND', name);
        images.delete(name);
        if (r.deleteImage) deletedAt.set(name, Math.round((Date.now() - t0) / 1000));
        stats.deletes++;
      } catch (err) {
        clientError(`delete:${codeOf(err)}`, (err as Error).message);
      } finally {
        busy.delete(name);
      }
    }
  }

  async function lister() {
    while (!stopping) {
      try {
        let after: string | null = null;
        do {
          const page: { images: { edges: { node: { name: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } =
            await api.graphql(
              'query($a: String) { images(first: 100, after: $a, prefix: "soak/") { edges { node { name } } pageInfo { hasNextPage endCursor } } }',
              { a: after },
            );
          stats.listedImages += page.images.edges.length;
          after = page.images.pageInfo.hasNextPage ? page.images.pageInfo.endCursor : null;
        } while (after && !stopping);
        stats.listings++;
      } catch (err) {
        clientError(`list:${codeOf(err)}`, (err as Error).message);
      }
    }
  }

  // ---- the faults ---------------------------------------------------------------------------
  async function faults() {
    const plan: { at: number; run: () => Promise<void> }[] = [];
    for (let k = 1, at = opts.killEvery; at + opts.relaunchAfter + 20 <= opts.minutes * 60; k++, at += opts.killEvery) {
      const node = nodes[(k - 1) % nodes.length];
      plan.push({
        at,
        run: async () => {
          const h = held(node);
          timeline.push({ at: Math.round((Date.now() - t0) / 1000), event: 'kill -9', node: node.name, heldFragments: h });
          say(`kill -9 ${node.name} (it holds ${h} stored fragments in the index)`);
          node.running = false;
          node.proc!.child.kill('SIGKILL');
          await node.proc!.exited;
          await sleep(opts.relaunchAfter * 1000);
          if (stopping) return;
          await launch(node);
          timeline.push({ at: Math.round((Date.now() - t0) / 1000), event: 'relaunched', node: node.name, heldFragments: held(node) });
          say(`relaunched ${node.name} (the index now lists ${held(node)} stored fragments on it)`);
        },
      });
    }
    const frozen = nodes[Math.min(3, nodes.length - 1)];
    plan.push({
      at: STOP_AT_S,
      run: async () => {
        if (!frozen.running) {
          say(`SIGSTOP skipped: ${frozen.name} is down`);
          return;
        }
        const h = held(frozen);
        timeline.push({ at: Math.round((Date.now() - t0) / 1000), event: 'SIGSTOP', node: frozen.name, heldFragments: h });
        say(`SIGSTOP ${frozen.name} for ${opts.stopFor} s (it holds ${h})`);
        frozen.running = false;
        frozen.proc!.child.kill('SIGSTOP');
        await sleep(opts.stopFor * 1000);
        frozen.proc!.child.kill('SIGCONT');
        frozen.running = true;
        timeline.push({ at: Math.round((Date.now() - t0) / 1000), event: 'SIGCONT', node: frozen.name, heldFragments: held(frozen) });
        say(`SIGCONT ${frozen.name} (the index lists ${held(frozen)} on it)`);
      },
    });
    await Promise.all(
      plan.map(async (p) => {
        await sleep(Math.max(0, p.at * 1000 - (Date.now() - t0)));
        if (!stopping) await p.run();
      }),
    );
  }

  const progress = setInterval(
    () =>
      say(
        `uploads ${stats.uploads}, reads ${stats.reads}, deletes ${stats.deletes}, listings ${stats.listings}, errors ${JSON.stringify(stats.errors)}, repair copies ${repairs.total}, images ${images.size}`,
      ),
    30_000,
  );
  const load = [
    ...Array.from({ length: opts.writers }, (_, i) => writer(i + 1)),
    ...Array.from({ length: opts.readers }, reader),
    deleter(),
    lister(),
  ];
  const faulting = faults();
  await sleep(DURATION_MS);
  stopping = true;
  say('load ends; waiting for the clients in flight');
  await Promise.all(load);
  await faulting;
  clearInterval(progress);

  // ---- the end: let the cluster settle, then verify every image ------------------------------
  for (const n of nodes) if (!n.running) await launch(n);
  const STATUS = '{ cluster { underReplicatedFragments liveDatanodeCount } datanodes { name: url status fragmentCount } }';
  type Status = {
    cluster: { underReplicatedFragments: number; liveDatanodeCount: number };
    datanodes: { name: string; status: string; fragmentCount: number }[];
  };
  let status = await api.graphql<Status>(STATUS);
  const settleUntil = Date.now() + 120_000;
  while (Date.now() < settleUntil && (status.cluster.underReplicatedFragments > 0 || status.cluster.liveDatanodeCount < nodes.length)) {
    await sleep(2000);
    status = await api.graphql<Status>(STATUS);
  }
  say(
    `settled: ${status.cluster.underReplicatedFragments} under-replicated, ${status.cluster.liveDatanodeCount} live datanodes; a few health samples more for the fragment counts`,
  );
  await sleep(10_000);
  clearInterval(sampler);
  status = await api.graphql<Status>(STATUS);

  say(`verifying ${images.size} images`);
  const stored = new Set<string>();
  for (let after: string | null = null; ;) {
    const page: { images: { edges: { node: { name: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } =
      await api.graphql(
        'query($a: String) { images(first: 500, after: $a, prefix: "soak/") { edges { node { name } } pageInfo { hasNextPage endCursor } } }',
        { a: after },
      );
    for (const e of page.images.edges) stored.add(e.node.name);
    if (!page.images.pageInfo.hasNextPage) break;
    after = page.images.pageInfo.endCursor;
  }
  const verify = {
    expected: images.size,
    listed: stored.size,
    identical: 0,
    differ: [] as string[],
    missing: [] as string[],
    unexpected: [...stored].filter((n) => !images.has(n)),
  };
  // An image listed that the clients deleted (or never stored): when it was deleted, what the index says.
  const unexpectedDetail = await Promise.all(
    verify.unexpected.slice(0, 20).map(async (name) => ({
      name,
      deletedAtS: deletedAt.get(name) ?? null,
      image: (
        await api.graphql<{ image: unknown }>('query($n: String!) { image(name: $n) { createdAt size fragments { replicas { url } } } }', {
          n: name,
        })
      ).image,
    })),
  );
  const names = [...images.keys()];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let name = names.pop(); name; name = names.pop()) {
        const a = await api.request('GET', `/images/${name.split('/').map(encodeURIComponent).join('/')}`);
        if (a.status !== 200) verify.missing.push(`${name} (HTTP ${a.status})`);
        else if (createHash('sha256').update(a.body).digest('hex') === images.get(name)!.sha256) verify.identical++;
        else verify.differ.push(name);
      }
    }),
  );

  const indexShares = Object.fromEntries(nodes.map((n) => [n.name, held(n)]));
  const storedFragments = (
    db.prepare(`SELECT count(*) AS n FROM fragments f JOIN images i ON i.id = f.image_id AND i.state = 'stored'`).get() as { n: number }
  ).n;
  events.close();
  db.close();
  api.close();
  const outages = timeline.filter((e) => e.event === 'kill -9' || e.event === 'SIGSTOP');
  const byUrl = new Map(nodes.map((n) => [n.url, n.name]));
  const result = {
    scenario: {
      minutes: opts.minutes,
      datanodes: nodes.length,
      replicationFactor: R,
      repairAfterS: opts.repairAfter,
      fragmentSize: opts.fragmentSize,
      imageKiB: [opts.minKib, opts.maxKib],
      writers: opts.writers,
      readers: opts.readers,
      killEveryS: opts.killEvery,
      relaunchAfterS: opts.relaunchAfter,
      stopAtS: STOP_AT_S,
      stopForS: opts.stopFor,
    },
    clients: {
      uploads: stats.uploads,
      uploadedMiB: Math.round(stats.uploadedBytes / 2 ** 20),
      reads: stats.reads,
      readMiB: Math.round(stats.readBytes / 2 ** 20),
      deletes: stats.deletes,
      listings: stats.listings,
      listedImages: stats.listedImages,
      errors: stats.errors,
      errorCount: Object.values(stats.errors).reduce((a, b) => a + b, 0),
      errorSamples: stats.errorSamples,
    },
    verification: { ...verify, unexpectedDetail, allIdentical: verify.identical === verify.expected && verify.unexpected.length === 0 },
    replication: {
      replicaWritesByUploads: stats.uploadFragments * R,
      fragmentsUploaded: stats.uploadFragments,
      repairCopies: repairs.total,
      repairCopiesByReason: repairs.byReason,
      repairCopiesByTarget: Object.fromEntries(Object.entries(repairs.byTarget).map(([u, c]) => [byUrl.get(u) ?? u, c])),
      distinctFragmentsRepaired: repairs.fragments.size,
      fragmentsEverBelowR: sampling.underReplicatedUnion.size,
      repairedFragmentsNeverSeenBelowR: [...repairs.fragments].filter((f) => !sampling.underReplicatedUnion.has(f)).length,
      fragmentsOnNodesWhenTheyWentOut: outages.reduce((a, e) => a + (e.heldFragments ?? 0), 0),
      sseEventsSeen: events.count(),
    },
    liveCopies: {
      secondsSampled: sampling.seconds,
      secondsWithSomeFragmentAtOneLiveCopyOrLess: sampling.secondsWithSingleLiveCopy,
      secondsWithSomeFragmentAtNoLiveCopy: sampling.secondsWithNoLiveCopy,
      noLiveCopyAtS: sampling.noLiveCopyAt,
      noLiveCopySamples: sampling.noLiveCopySamples,
      secondsAbove50PercentAtOneLiveCopy: sampling.secondsAbove50Percent,
      secondsAbove60PercentAtOneLiveCopy: sampling.secondsAbove60Percent,
      peakFractionAtOneLiveCopyOrLess: Number(sampling.peakSingleLiveFraction.toFixed(3)),
      peakFragmentsAtOneLiveCopyOrLess: sampling.peakSingleLive,
      peakOfFragments: sampling.fragmentsAtPeak,
      peakAtS: sampling.peakAt,
    },
    end: {
      storedFragments,
      underReplicatedFragments: status.cluster.underReplicatedFragments,
      datanodes: status.datanodes.map((d) => ({
        datanode: byUrl.get(d.name) ?? d.name,
        status: d.status,
        fragmentCount: d.fragmentCount,
        replicasInIndex: indexShares[byUrl.get(d.name) ?? ''],
      })),
      evenShare: Math.round((storedFragments * R) / nodes.length),
    },
    timeline,
    coordinatorWarnings,
  };
  stopping = true;
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  const c = result.clients;
  const rep = result.replication;
  const lc = result.liveCopies;
  process.stdout.write(
    [
      '',
      `Soak, ${opts.minutes} min: ${c.uploads} uploads (${c.uploadedMiB} MiB), ${c.reads} reads, ${c.deletes} deletes, ${c.listings} full listings; client errors: ${c.errorCount} ${JSON.stringify(c.errors)}`,
      `Verification: ${verify.identical}/${verify.expected} surviving images byte-identical; missing ${verify.missing.length}, differing ${verify.differ.length}, unexpected ${verify.unexpected.length}`,
      `Repair copies: ${rep.repairCopies} (${JSON.stringify(rep.repairCopiesByReason)}) against ${rep.replicaWritesByUploads} replica writes by uploads; ${rep.distinctFragmentsRepaired} distinct fragments; fragments ever below R live copies: ${rep.fragmentsEverBelowR}; repaired fragments never seen below R: ${rep.repairedFragmentsNeverSeenBelowR}; fragments held by nodes when they went out: ${rep.fragmentsOnNodesWhenTheyWentOut}`,
      `Single live copy: ${lc.secondsWithSomeFragmentAtOneLiveCopyOrLess} s of ${lc.secondsSampled} s sampled had a fragment at <= 1 live copy (no live copy: ${lc.secondsWithSomeFragmentAtNoLiveCopy} s; over 50% of fragments: ${lc.secondsAbove50PercentAtOneLiveCopy} s, over 60%: ${lc.secondsAbove60PercentAtOneLiveCopy} s); peak ${(lc.peakFractionAtOneLiveCopyOrLess * 100).toFixed(1)}% (${lc.peakFragmentsAtOneLiveCopyOrLess} of ${lc.peakOfFragments}) at ${lc.peakAtS} s`,
      `End: ${storedFragments} stored fragments x RF ${R} = even share ${result.end.evenShare} per datanode; ${result.end.datanodes.map((d) => `${d.datanode} ${d.status} ${d.fragmentCount} files (${d.replicasInIndex} in index)`).join(', ')}`,
      ...timeline.map(
        (e) =>
          `  ${String(e.at).padStart(4)} s  ${e.event.padEnd(10)} ${e.node}${e.heldFragments !== undefined ? `  (index: ${e.heldFragments} stored fragments on it)` : ''}`,
      ),
      opts.keepDir ? `Data kept in ${dir}` : '',
    ].join('\n') + '\n',
  );
  await coordinator.stop();
  await Promise.all(nodes.map((n) => n.proc?.stop()));
}

/** clusterEvents over SSE: counts ReplicaRepaired by reason and target; reconnects if cut. */
function subscribe(baseUrl: string, token: string) {
  const u = new URL(baseUrl);
  const body = JSON.stringify({
    query: 'subscription { clusterEvents { __typename ... on ReplicaRepaired { fragmentId reason datanode { url } } } }',
  });
  let req: http.ClientRequest | undefined;
  let closed = false;
  let count = 0;
  const connect = () => {
    if (closed) return;
    req = http.request(
      {
        hostname: u.hostname,
        port: u.port,
        path: '/graphql',
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'text/event-stream',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        if (res.statusCode !== 200) say(`SSE subscription answered ${res.statusCode}`);
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          let cut;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const data = block
              .split('\n')
              .filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).trim())
              .join('\n');
            if (!data) continue;
            try {
              const e = JSON.parse(data)?.data?.clusterEvents;
              if (!e) continue;
              count++;
              if (e.__typename === 'ReplicaRepaired') {
                repairs.total++;
                repairs.byReason[e.reason] = (repairs.byReason[e.reason] ?? 0) + 1;
                repairs.byTarget[e.datanode.url] = (repairs.byTarget[e.datanode.url] ?? 0) + 1;
                repairs.fragments.add(e.fragmentId);
              }
            } catch {
              /* a keep-alive or partial line */
            }
          }
        });
        res.on('end', () => {
          if (!closed) {
            say('SSE subscription ended; reconnecting (events in the gap are not counted)');
            setTimeout(connect, 500);
          }
        });
      },
    );
    req.on('error', (err) => {
      if (!closed) {
        say(`SSE subscription error: ${err.message}; reconnecting`);
        setTimeout(connect, 500);
      }
    });
    req.end(body);
  };
  connect();
  return { close: () => ((closed = true), req?.destroy()), count: () => count };
}

main().then(
  () => process.exit(0),
  (err) => {
    say(`failed: ${(err as Error).stack}`);
    process.exit(1);
  },
);
