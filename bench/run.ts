// `npm run bench [-- --quick] [-- --json]`: starts a local cluster as real processes (npm start:
// coordinator + 3 datanodes, RF 2, loopback, temp data dir) and a bare replicating proxy on the
// same datanodes, and measures Tessera against it in one run, alternating runs, medians.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import postgres from 'postgres';
import { isPostgresUrl } from '../src/metadata/store.ts';
import { imagePath } from '../src/image-paths.ts';
import { buildCliBundle, cliDownload, cliUpload, takeCliCpu, writeImageFile } from './cli.ts';
import { createHttp, roundRobin, type BenchHttp } from './http.ts';
import { fillIndex, listingName, rawListing } from './listing.ts';
import {
  cleanup,
  freePortBlock,
  onCleanup,
  removeOnCleanup,
  startBareProxy,
  startCluster,
  startCoordinator,
  type BareProxy,
  type Cluster,
} from './processes.ts';
import { json, median, percentile, table, type Figure } from './report.ts';
import { cpuMs, peakRss, systemCpuMs } from './rss.ts';
import {
  MB,
  bareObjectFromTessera,
  bareSmallUploads,
  bareUpload,
  discardBareFragments,
  download,
  imageSha256,
  inFlight,
  makePool,
  smallReads,
  tesseraSmallUploads,
  tesseraUpload,
  timed,
} from './workloads.ts';

const SCENARIOS = ['listing', 'upload', 'download', 'cli-upload', 'cli-download', 'small', 'deletes', 'rss'] as const;
type Scenario = (typeof SCENARIOS)[number];

const positive = (flag: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a positive number (got "${v}").`);
  return n;
};

const program = new Command('npm run bench --')
  .description(
    'Measures Tessera against a bare replicating proxy on the same datanodes. For clean JSON on stdout: npm run -s bench -- --json',
  )
  .option('--json', 'print the results as JSON (progress goes to stderr)', false)
  .option('--quick', 'a fast smoke run (< 1 min): smaller images, one run each', false)
  .option('--scenarios <list>', `comma-separated subset of ${SCENARIOS.join(',')}`, SCENARIOS.join(','))
  .option('--size <MB>', 'image size for the upload/download figures (default 256; quick 64)', positive('--size'))
  .option('--rss-size <MB>', 'image size of the peak-RSS upload (default 1024; quick 256)', positive('--rss-size'))
  .option('--runs <n>', 'alternating runs per upload/download figure (default 5; quick 1)', positive('--runs'))
  .option('--in-flight <k>', 'fragments in flight per upload', positive('--in-flight'), 4)
  .option('--no-base64', 'skip the base64 upload runs')
  .option('--small-count <n>', 'small images per run (default 1500; quick 300)', positive('--small-count'))
  .option('--small-runs <n>', 'alternating runs of the small-image figures (default 3; quick 1)', positive('--small-runs'))
  .option('--small-size <KB>', 'small image size in KB (1000 bytes)', positive('--small-size'), 100)
  .option('--concurrency <n>', 'small images in flight', positive('--concurrency'), 8)
  .option(
    '--delete-count <n>',
    'small images deleted one by one per run of the deletes figure (default 1000; quick 200)',
    positive('--delete-count'),
  )
  .option('--list-rows <n>', 'stored images in the index for the listing figure (default 1000000)', positive('--list-rows'))
  .option('--list-queries <n>', 'timed listing queries (default 500; quick 150)', positive('--list-queries'))
  .option(
    '--metadata <postgres-url>',
    "run the coordinator on PostgreSQL: a fresh database made on this URL's server for the run (dropped after); also TESSERA_BENCH_METADATA",
    process.env.TESSERA_BENCH_METADATA,
  )
  .option(
    '--coordinators <n>',
    'coordinators on the --metadata database, the requests of every scenario sent to each in turn (the bare proxy stays one)',
    positive('--coordinators'),
    1,
  )
  .option('--profile <dir>', 'write --cpu-prof profiles of every cluster process to this folder')
  .option('-v, --verbose', "pass the cluster's warnings through to stderr", false)
  .showHelpAfterError();
program.parse();
const flags = program.opts<{
  json: boolean;
  quick: boolean;
  scenarios: string;
  base64: boolean;
  size?: number;
  rssSize?: number;
  runs?: number;
  inFlight: number;
  smallCount?: number;
  smallRuns?: number;
  smallSize: number;
  concurrency: number;
  deleteCount?: number;
  listRows?: number;
  listQueries?: number;
  metadata?: string;
  coordinators: number;
  profile?: string;
  verbose: boolean;
}>();
if (flags.metadata !== undefined && !isPostgresUrl(flags.metadata))
  program.error('--metadata: give a postgres:// URL (SQLite is the default).');
if (!Number.isInteger(flags.coordinators)) program.error('--coordinators: give a whole number.');
if (flags.coordinators > 1 && flags.metadata === undefined)
  program.error('--coordinators: several coordinators share one database: give --metadata postgres://…');
const quick = flags.quick;
const cfg = {
  size: Math.round((flags.size ?? (quick ? 64 : 256)) * MB),
  rssSize: Math.round((flags.rssSize ?? (quick ? 256 : 1024)) * MB),
  runs: flags.runs ?? (quick ? 1 : 5),
  inFlight: flags.inFlight,
  smallCount: flags.smallCount ?? (quick ? 300 : 1500),
  smallRuns: flags.smallRuns ?? (quick ? 1 : 3),
  smallSize: Math.round(flags.smallSize * 1000),
  concurrency: flags.concurrency,
  deleteCount: flags.deleteCount ?? (quick ? 200 : 1000),
  listRows: flags.listRows ?? 1_000_000,
  listQueries: flags.listQueries ?? (quick ? 150 : 500),
};
const wanted = new Set(
  flags.scenarios
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
for (const s of wanted)
  if (!(SCENARIOS as readonly string[]).includes(s)) program.error(`--scenarios: unknown scenario "${s}" (known: ${SCENARIOS.join(', ')})`);
// The listing figure fills the SQLite file before the coordinator starts and compares with raw SQLite reads.
if (flags.metadata !== undefined && wanted.delete('listing'))
  process.stderr.write('bench: the listing scenario runs on SQLite only; skipped\n');
const runs = (s: Scenario) => wanted.has(s);

const say = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const out = (text: string) => process.stdout.write(text + '\n');

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    say(`${signal}: stopping the cluster and removing the data dir`);
    void cleanup().then(() => process.exit(130));
  });
}

const figures: Figure[] = [];
const started = performance.now();

/** Pids of the servers under test (the coordinators, or the bare proxy) and of the datanodes, by name, for CPU accounting. */
let servers: { tessera: Record<string, number>; bare: Record<string, number>; datanodes: Record<string, number> } | undefined;

interface Run {
  ms: number;
  /** CPU ms the server (the coordinators together, or the bare proxy) and the datanodes (together) used during the run. */
  serverCpu: number;
  datanodeCpu: number;
  /** The kernel's part of datanodeCpu (system time: writes, syncs, renames, sockets). */
  datanodeSysCpu: number;
}

/**
 * How long after a deletion a run that creates files waits (ms). On ext4 without a journal (as
 * this machine's root: /sys/fs/ext4/<dev>/journal_task says <none>) the inode allocator skips
 * inodes freed within the last dirty_expire interval (vm.dirty_expire_centisecs, 30 s) and
 * rescans them from the start of the group on every new file (recently_deleted(), a buffer
 * lookup each): after a mass deletion every new file costs the datanodes more kernel CPU for
 * that long, so whichever side ran first after a deletion paid for it (perf: recently_deleted
 * and find_get_block_common). 0 on other file systems.
 */
function freedInodeQuarantineMs(dir: string): number {
  try {
    const real = fs.realpathSync(dir);
    let best: { mountPoint: string; fsType: string; source: string } | undefined;
    for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const [left, right] = line.split(' - ');
      if (!right) continue;
      const mountPoint = left.split(' ')[4].replace(/\\040/g, ' ');
      const [fsType, source] = right.split(' ');
      const inside = real === mountPoint || real.startsWith(mountPoint === '/' ? '/' : `${mountPoint}/`);
      if (inside && (!best || mountPoint.length >= best.mountPoint.length)) best = { mountPoint, fsType, source };
    }
    if (best?.fsType !== 'ext4' || !best.source.startsWith('/dev/')) return 0;
    const journal = fs.readFileSync(`/sys/fs/ext4/${path.basename(best.source)}/journal_task`, 'utf8').trim();
    if (journal !== '<none>') return 0;
    return Number(fs.readFileSync('/proc/sys/vm/dirty_expire_centisecs', 'utf8').trim()) * 10;
  } catch {
    return 0;
  }
}

/** Replicas per fragment in the bench's cluster (npm start's default). */
const REPLICAS = 2;

/**
 * The most disk the selected scenarios hold at once (bytes): each one's images and bare fragments
 * go when it ends (discardScenario), so the largest scenario, plus the listing's index rows (kept
 * to the end) and the 2 MiB warm-ups. Counted as never deleted within a scenario: an upper bound.
 */
function diskNeeded(): number {
  const { size, rssSize, runs: n, smallCount, smallRuns, smallSize, deleteCount } = cfg;
  const warmSmall = Math.min(smallCount, quick ? 100 : 300);
  const bigWays = 2 + (flags.base64 ? 2 : 0); // multipart and its bare run, base64 and its bare run
  const peaks = [
    // The small images stay through the deletes figure (main).
    ((runs('small') ? 4 * warmSmall + 4 * smallRuns * smallCount : 0) + (runs('deletes') ? 2 * deleteCount : 0)) * smallSize * REPLICAS,
    runs('upload') || runs('download') ? (3 * 32 * 2 ** 20 + (runs('upload') ? n : 1) * bigWays * size) * REPLICAS : 0,
    runs('cli-upload') || runs('cli-download') ? (2 + 2 * n) * size * REPLICAS + 2 * size : 0,
    runs('rss') ? 2 * rssSize * REPLICAS : 0,
  ];
  const INDEX_BYTES_PER_ROW = 400; // 254 measured for fillIndex's rows, plus the WAL's room
  // +10%: files take whole blocks (a 100,000-byte fragment 102,400), the index grows with the images.
  return 1.1 * Math.max(...peaks) + (runs('listing') ? cfg.listRows * INDEX_BYTES_PER_ROW : 0);
}

/** Refuses to start when the data dir's file system has less room than the run needs (diskNeeded), rather than failing with ENOSPC mid-run. */
function checkDiskRoom(dataDir: string) {
  const { bavail, bsize } = fs.statfsSync(dataDir);
  const free = bavail * bsize;
  const needed = diskNeeded();
  const gb = (b: number) => `${(b / 1e9).toFixed(1)} GB`;
  if (free < needed) {
    throw new Error(
      `the data dir ${dataDir} has ${gb(free)} free; this run needs up to ${gb(needed)}. ` +
        'Use fewer --runs, a smaller --size or --rss-size, fewer --scenarios, or point TMPDIR at a larger disk.',
    );
  }
  say(`disk: up to ${gb(needed)} needed, ${gb(free)} free`);
}

let inodeQuarantineMs = 0;
/**
 * When the bench last freed files: at its start too, since a bench run just before this one
 * removed its whole data dir when it ended.
 */
let lastFreed = performance.now();

/** Runs that create files start once the files freed before them are past the quarantine, on both sides alike. */
async function freedInodesAged() {
  const wait = lastFreed + inodeQuarantineMs - performance.now();
  if (wait <= 0) return;
  if (wait > 1000) say(`waiting ${(wait / 1000).toFixed(0)} s for the inodes freed before this run to age (ext4 without a journal)`);
  await new Promise((r) => setTimeout(r, wait));
}

/**
 * One timed run against `side`, with the CPU its processes used. The run starts once every
 * process under test is idle, and its CPU is read once they are idle again: work a run leaves
 * behind (background rounds, GC, journal syncs) is charged to that run, and never slows the other
 * side's run that follows it (which would flatter whichever side defers more).
 */
async function measured(side: 'tessera' | 'bare', work: () => Promise<unknown>, { createsFiles = true } = {}): Promise<Run> {
  if (createsFiles) await freedInodesAged();
  const server = servers?.[side] ?? {};
  const datanodes = servers?.datanodes ?? {};
  const everyone = servers ? { ...servers.tessera, ...servers.bare, ...datanodes } : datanodes;
  await idle(everyone);
  const ours = { ...server, ...datanodes };
  const before = cpuOf(ours);
  const sysBefore = cpuOf(datanodes, systemCpuMs);
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  await idle(everyone);
  const after = cpuOf(ours);
  const sysAfter = cpuOf(datanodes, systemCpuMs);
  const sum = (pids: Record<string, number>) => Object.keys(pids).reduce((n, k) => n + after[k] - before[k], 0);
  const datanodeSysCpu = Object.keys(datanodes).reduce((n, k) => n + sysAfter[k] - sysBefore[k], 0);
  return { ms, serverCpu: servers ? sum(server) : NaN, datanodeCpu: sum(datanodes), datanodeSysCpu };
}

const cpuOf = (pids: Record<string, number>, of = cpuMs) => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, of(pid)]));

/** Waits (at most 5 s) until `pids` together used at most 2 clock ticks (20 ms) of CPU in 250 ms. */
async function idle(pids: Record<string, number>) {
  const total = () => Object.values(pids).reduce((n, pid) => n + (cpuMs(pid) || 0), 0);
  let last = total();
  for (let waited = 0; waited < 5000; waited += 250) {
    await new Promise((r) => setTimeout(r, 250));
    const now = total();
    if (now - last <= 20) return;
    last = now;
  }
}

/** The datanodes' CPU ms per unit of a run, user/system: the kernel's part is mostly the file system's. */
const datanodeSplit = (run: Run, units: number) =>
  `${((run.datanodeCpu - run.datanodeSysCpu) / units).toFixed(2)}/${(run.datanodeSysCpu / units).toFixed(2)}`;

/** Median CPU ms per unit (MB, image) of a set of runs, for the figure's `cpu` field. */
const cpuPer = (runs: Run[], units: number) => ({
  server: median(runs.map((r) => r.serverCpu / units)),
  datanodes: median(runs.map((r) => r.datanodeCpu / units)),
});

/** A fresh database on the server of `adminUrl` for this run, dropped at cleanup: its URL. */
async function benchDatabase(adminUrl: string): Promise<string> {
  const name = `tessera_bench_${process.pid}_${Date.now().toString(36)}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  onCleanup(async () => {
    const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
    await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).finally(() => sql.end());
  });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  say(`metadata on PostgreSQL: database ${name}`);
  return url.toString();
}

async function main() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bench-'));
  removeOnCleanup(dataDir);
  inodeQuarantineMs = freedInodeQuarantineMs(dataDir);
  say(`data dir ${dataDir}; ${JSON.stringify(cfg)}`);
  checkDiskRoom(dataDir);

  if (runs('listing')) {
    const ms = fillIndex(dataDir, cfg.listRows);
    say(`filled the index with ${cfg.listRows} stored images in ${(ms / 1000).toFixed(1)} s`);
  }

  if (runs('cli-upload') || runs('cli-download')) buildCliBundle();

  const port = await freePortBlock(5);
  const metadataArgs = flags.metadata === undefined ? [] : ['--metadata', await benchDatabase(flags.metadata)];
  const env: Record<string, string> = {};
  if (flags.profile) {
    fs.mkdirSync(flags.profile, { recursive: true });
    env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import ${new URL('./cpu-profile.mjs', import.meta.url).href}`.trim();
    env.TESSERA_BENCH_PROFILE_DIR = path.resolve(flags.profile);
  }
  // Defaults, but no scrubbing: the scrubber re-reads 8 MB/s in the background, a load that has
  // nothing to do with the data path and would land on both sides of every comparison.
  const clusterArgs = ['--scrub-rate', '0', ...metadataArgs];
  const log = flags.verbose ? (l: string) => process.stderr.write(`  | ${l}\n`) : undefined;
  const cluster = await startCluster(dataDir, port, { args: clusterArgs, env, log });
  const bare = await startBareProxy(port + 4, cluster.datanodeUrls, cluster.secretFile, env);
  say(`cluster at ${cluster.url} (datanodes ${cluster.datanodeUrls.join(' ')}), bare proxy at ${bare.url}`);
  const pids = cluster.pids();
  const coordinators = [{ name: 'coordinator', url: cluster.url, pid: pids.coordinator }];
  for (let i = 2; i <= flags.coordinators; i++) {
    const name = `coordinator-${i}`;
    coordinators.push({ name, ...(await startCoordinator(cluster, name, { args: clusterArgs, env, log })) });
    say(`${name} at ${coordinators.at(-1)!.url}`);
  }
  servers = {
    tessera: Object.fromEntries(coordinators.map((c) => [c.name, c.pid])),
    bare: { bare: bare.pid },
    datanodes: Object.fromEntries(Object.entries(pids).filter(([k]) => k.startsWith('datanode'))),
  };
  const each = coordinators.map((c) => createHttp(c.url, 64, { authorization: `Bearer ${cluster.token}` }));
  const tess = roundRobin(each);
  const base = createHttp(bare.url);
  try {
    for (const http of each) await waitForDatanodes(http);
    if (runs('listing')) await listing(tess, cluster);
    // Small images before the big ones: an ext4 that has just freed thousands of inodes is slow to
    // allocate new ones for a while (every small image is two new files; freedInodesAged waits
    // that out before each run that creates files, on both sides).
    const small = runs('small') ? await smallImages(tess, base) : [];
    if (runs('deletes')) await deletes(tess);
    // The small images go after the deletes figure, not before it: deleting their 13,200 just
    // before left its sequential deletes at 300/s instead of 760-1,100/s. A coordinator alone
    // deletes as fast after a mass deletion, so what follows freeing their 26,400 files here
    // (freedInodesAged) landed in the timing.
    if (runs('small')) await discardScenario(tess, base, small);
    const pool = makePool(8, 2 * 1024 * 1024, runs('upload') && flags.base64);
    if (runs('upload') || runs('download')) await bigImages(tess, base, cluster, pool);
    if (runs('cli-upload') || runs('cli-download')) await cli(tess, base, cluster, dataDir, pool);
    if (runs('rss')) await memory(tess, base, cluster, bare, pool);
  } finally {
    tess.close();
    base.close();
  }
}

async function waitForDatanodes(http: BenchHttp) {
  for (let i = 0; i < 100; i++) {
    const { datanodes } = await http.graphql<{ datanodes: { status: string }[] }>(`{ datanodes { status } }`);
    if (datanodes.filter((d) => d.status !== 'DOWN').length >= 3) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the datanodes did not come up');
}

/** Deletes Tessera images (`concurrency` at a time), then waits (up to 20 s) until their replica files are gone, outside any timing. */
async function deleteImages(http: BenchHttp, names: string[], concurrency = 1) {
  await inFlight(names.length, concurrency, (i) => http.graphql(`mutation($n: String!) { deleteImage(name: $n) }`, { n: names[i] }));
  try {
    for (let i = 0; i < 200; i++) {
      const { cluster } = await http.graphql<{ cluster: { pendingReplicaDeletions: number } }>(`{ cluster { pendingReplicaDeletions } }`);
      if (cluster.pendingReplicaDeletions === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    say('replica deletions still pending after 20 s: the next run starts on top of their files');
  } finally {
    lastFreed = performance.now();
  }
}

/**
 * A scenario's files go once its figures are taken (Tessera's images, and every fragment stored
 * through the bare proxy), so a run needs the disk of its largest scenario, not of all of them
 * (diskNeeded). Not between a scenario's runs: a deletion taxes the next run's new files
 * (freedInodesAged).
 */
async function discardScenario(tess: BenchHttp, base: BenchHttp, names: string[]) {
  await discardBareFragments(base, cfg.concurrency);
  await deleteImages(tess, names, cfg.concurrency);
}

const mbps = (bytes: number, ms: number) => bytes / MB / (ms / 1000);

async function bigImages(tess: BenchHttp, base: BenchHttp, cluster: Cluster, pool: ReturnType<typeof makePool>) {
  const fragmentSize = 2 * 1024 * 1024;
  const expected = imageSha256(pool, cfg.size, fragmentSize);
  const k = { inFlight: cfg.inFlight };

  // Warm-up (untimed): both servers' code paths compiled, connections open.
  const warm = 16 * fragmentSize;
  await tesseraUpload(tess, 'bench/warm-mp', warm, pool, { ...k, encoding: 'multipart' });
  // The pool carries base64 only when the upload figures run (main): `--scenarios download` alone has none.
  if (flags.base64 && runs('upload')) await tesseraUpload(tess, 'bench/warm-b64', warm, pool, { ...k, encoding: 'base64' });
  await bareUpload(base, 'warm', warm, fragmentSize, pool, k);

  // Each Tessera run is followed by its own bare run, and compared with those only: a bare run
  // right after a base64 one is measurably slower than one right after a multipart one here.
  const up = { mp: [] as Run[], b64: [] as Run[], bareMp: [] as Run[], bareB64: [] as Run[] };
  const keep = 'bench/big';
  const uploadRuns = runs('upload') ? cfg.runs : 0;
  const uploaded: string[] = [];
  const rate = (r: Run) => mbps(cfg.size, r.ms);
  for (let r = 0; r < Math.max(uploadRuns, 1); r++) {
    const name = r === 0 ? keep : `bench/big-mp-${r}`;
    let stored = '';
    up.mp.push(
      await measured(
        'tessera',
        async () => void (stored = (await tesseraUpload(tess, name, cfg.size, pool, { ...k, encoding: 'multipart' })).sha256),
      ),
    );
    if (stored !== expected) throw new Error(`${name}: Tessera stored sha256 ${stored}, expected ${expected}`);
    if (!runs('upload')) break;
    up.bareMp.push(await measured('bare', () => bareUpload(base, `big-${r}-a`, cfg.size, fragmentSize, pool, k)));
    if (flags.base64) {
      up.b64.push(await measured('tessera', () => tesseraUpload(tess, `bench/big-b64-${r}`, cfg.size, pool, { ...k, encoding: 'base64' })));
      up.bareB64.push(await measured('bare', () => bareUpload(base, `big-${r}-b`, cfg.size, fragmentSize, pool, k)));
    }
    const last = (xs: Run[]) => (xs.length ? rate(xs.at(-1)!).toFixed(0) : '—');
    say(
      `upload run ${r + 1}/${cfg.runs}: multipart ${last(up.mp)} (bare ${last(up.bareMp)}), base64 ${last(up.b64)} (bare ${last(up.bareB64)}) MB/s; CPU ms/MB of the multipart run: coordinator ${(up.mp.at(-1)!.serverCpu / (cfg.size / MB)).toFixed(2)}, bare proxy ${(up.bareMp.at(-1)!.serverCpu / (cfg.size / MB)).toFixed(2)}`,
    );
    // Deleted once the runs are over: a deletion between runs would tax the next run's new files (freedInodesAged).
    uploaded.push(...(r === 0 ? [] : [name]), ...(flags.base64 ? [`bench/big-b64-${r}`] : []));
  }
  await deleteImages(tess, uploaded);
  if (runs('upload')) {
    const sizeText = `${(cfg.size / MB).toFixed(0)} MB image, ${cfg.inFlight} in flight`;
    const mb = cfg.size / MB;
    figures.push({
      id: 'upload_multipart',
      label: `upload, multipart fragments, ${sizeText}`,
      unit: 'MB/s',
      tessera: median(up.mp.map(rate)),
      baseline: median(up.bareMp.map(rate)),
      samples: { tessera: up.mp.map(rate), baseline: up.bareMp.map(rate) },
      cpu: { unit: 'MB', tessera: cpuPer(up.mp, mb), baseline: cpuPer(up.bareMp, mb) },
      target: { kind: 'ratio-min', threshold: 0.7, text: '>= 0.7x bare' },
    });
    if (flags.base64)
      figures.push({
        id: 'upload_base64',
        label: `upload, base64 fragments, ${sizeText}`,
        unit: 'MB/s',
        tessera: median(up.b64.map(rate)),
        baseline: median(up.bareB64.map(rate)),
        samples: { tessera: up.b64.map(rate), baseline: up.bareB64.map(rate) },
        cpu: { unit: 'MB', tessera: cpuPer(up.b64, mb), baseline: cpuPer(up.bareB64, mb) },
      });
  }

  if (runs('download')) {
    await bareObjectFromTessera(base, cluster.dataDir, keep, 'big');
    await download(tess, imagePath(keep), cfg.size); // warm-up
    await download(base, '/objects/big', cfg.size);
    const down = { t: [] as Run[], b: [] as Run[] };
    for (let r = 0; r < cfg.runs; r++) {
      down.t.push(await measured('tessera', () => download(tess, imagePath(keep), cfg.size), { createsFiles: false }));
      down.b.push(await measured('bare', () => download(base, '/objects/big', cfg.size), { createsFiles: false }));
      say(`download run ${r + 1}/${cfg.runs}: Tessera ${rate(down.t.at(-1)!).toFixed(0)}, bare ${rate(down.b.at(-1)!).toFixed(0)} MB/s`);
    }
    figures.push({
      id: 'download',
      label: `download, GET /images/{name}, ${(cfg.size / MB).toFixed(0)} MB image`,
      unit: 'MB/s',
      tessera: median(down.t.map(rate)),
      baseline: median(down.b.map(rate)),
      samples: { tessera: down.t.map(rate), baseline: down.b.map(rate) },
      cpu: { unit: 'MB', tessera: cpuPer(down.t, cfg.size / MB), baseline: cpuPer(down.b, cfg.size / MB) },
      target: { kind: 'ratio-min', threshold: 0.7, text: '>= 0.7x bare' },
      note: 'the bare proxy reads the same fragment files, in order, 3 ahead',
    });
  }
  await discardScenario(tess, base, [keep, 'bench/warm-mp', 'bench/warm-b64']);
}

/**
 * The real CLI process (bin/tessera.js) end to end against the bare proxy's HTTP rate in the same
 * run, alternating: `tessera upload` of a file on disk (page-cached) vs the bare proxy's upload of
 * the same bytes from memory; `tessera download -o file` (verified, written) vs the bare proxy's
 * download of the very same fragment files (only counted).
 */
async function cli(tess: BenchHttp, base: BenchHttp, cluster: Cluster, dataDir: string, pool: ReturnType<typeof makePool>) {
  const fragmentSize = 2 * 1024 * 1024;
  const home = fs.mkdtempSync(path.join(dataDir, 'cli-'));
  const file = path.join(home, 'image.bin');
  writeImageFile(file, pool, cfg.size, fragmentSize);
  const expected = imageSha256(pool, cfg.size, fragmentSize);
  const k = cfg.inFlight;
  const rate = (r: Run) => mbps(cfg.size, r.ms);
  const mb = cfg.size / MB;
  const keep = 'bench/cli-big';
  // Warm-up (untimed): the file in the page cache, both servers' paths compiled.
  const stored = await cliUpload(cluster.url, cluster.token, home, file, keep, k);
  if (stored !== expected) throw new Error(`tessera upload stored sha256 ${stored}, expected ${expected}`);
  await bareUpload(base, 'cli-warm', cfg.size, fragmentSize, pool, { inFlight: k });

  if (runs('cli-upload')) {
    const up = { t: [] as Run[], b: [] as Run[] };
    const uploaded: string[] = [];
    const cliCpu: number[] = [];
    for (let r = 0; r < cfg.runs; r++) {
      const name = `bench/cli-up-${r}`;
      let sha = '';
      takeCliCpu();
      up.t.push(await measured('tessera', async () => void (sha = await cliUpload(cluster.url, cluster.token, home, file, name, k))));
      cliCpu.push(takeCliCpu() / mb);
      if (sha !== expected) throw new Error(`${name}: stored sha256 ${sha}, expected ${expected}`);
      up.b.push(await measured('bare', () => bareUpload(base, `cli-up-${r}`, cfg.size, fragmentSize, pool, { inFlight: k })));
      say(
        `cli upload run ${r + 1}/${cfg.runs}: tessera upload ${rate(up.t.at(-1)!).toFixed(0)}, bare ${rate(up.b.at(-1)!).toFixed(0)} MB/s; datanode CPU ms/MB user/sys: tessera ${datanodeSplit(up.t.at(-1)!, mb)}, bare ${datanodeSplit(up.b.at(-1)!, mb)}`,
      );
      uploaded.push(name);
    }
    // Deleted once the runs are over: a deletion between runs would tax the next run's new files (freedInodesAged).
    await deleteImages(tess, uploaded);
    figures.push({
      id: 'cli_upload',
      label: `tessera upload (CLI process, end to end), ${mb.toFixed(0)} MB file, --parallel ${k}`,
      unit: 'MB/s',
      tessera: median(up.t.map(rate)),
      baseline: median(up.b.map(rate)),
      samples: { tessera: up.t.map(rate), baseline: up.b.map(rate) },
      cpu: { unit: 'MB', tessera: cpuPer(up.t, mb), baseline: cpuPer(up.b, mb) },
      target: { kind: 'ratio-min', threshold: 0.9, text: '>= 0.9x bare' },
      note: `the CLI reads the file, hashes while sending, completes with the sha256 (the CLI process used ${median(cliCpu).toFixed(2)} CPU ms per MB); the bare proxy is sent the same bytes from memory`,
    });
  }

  if (runs('cli-download')) {
    await bareObjectFromTessera(base, cluster.dataDir, keep, 'cli-big');
    const out = path.join(home, 'downloaded.bin');
    await cliDownload(cluster.url, cluster.token, home, keep, out, cfg.size); // warm-up
    await download(base, '/objects/cli-big', cfg.size);
    const down = { t: [] as Run[], b: [] as Run[] };
    const cliCpu: number[] = [];
    for (let r = 0; r < cfg.runs; r++) {
      takeCliCpu();
      // One output file per run: no inode allocations to speak of.
      down.t.push(
        await measured('tessera', () => cliDownload(cluster.url, cluster.token, home, keep, out, cfg.size), { createsFiles: false }),
      );
      cliCpu.push(takeCliCpu() / mb);
      down.b.push(await measured('bare', () => download(base, '/objects/cli-big', cfg.size), { createsFiles: false }));
      say(
        `cli download run ${r + 1}/${cfg.runs}: tessera download ${rate(down.t.at(-1)!).toFixed(0)}, bare ${rate(down.b.at(-1)!).toFixed(0)} MB/s`,
      );
    }
    figures.push({
      id: 'cli_download',
      label: `tessera download -o file (CLI process, end to end), ${mb.toFixed(0)} MB image`,
      unit: 'MB/s',
      tessera: median(down.t.map(rate)),
      baseline: median(down.b.map(rate)),
      samples: { tessera: down.t.map(rate), baseline: down.b.map(rate) },
      cpu: { unit: 'MB', tessera: cpuPer(down.t, mb), baseline: cpuPer(down.b, mb) },
      target: { kind: 'ratio-min', threshold: 0.9, text: '>= 0.9x bare' },
      note: `the CLI verifies the sha256 and writes the file (the CLI process used ${median(cliCpu).toFixed(2)} CPU ms per MB); the bare proxy reads the same fragment files, 3 ahead, and the bench only counts the bytes`,
    });
  }
  fs.rmSync(home, { recursive: true, force: true });
  await discardScenario(tess, base, [keep]);
}

/** Runs the small-image figures; answers the names of the Tessera images they stored (and leaves the bare proxy's fragments) for discardScenario. */
async function smallImages(tess: BenchHttp, base: BenchHttp): Promise<string[]> {
  const size = cfg.smallSize;
  const pool = makePool(64, size);
  const n = cfg.smallCount;
  const c = cfg.concurrency;
  const names = (tag: string) => Array.from({ length: n }, (_, i) => `bench/small/${tag}/${i}.jpg`);
  // Warm-up, untimed: long enough for the JIT to settle on both sides (100 was not: the first run lagged).
  const warm = Math.min(n, quick ? 100 : 300);
  await tesseraSmallUploads(tess, names('warm-a').slice(0, warm), pool, c, 'uploadImage');
  await tesseraSmallUploads(tess, names('warm-b').slice(0, warm), pool, c, 'chunked');
  await tesseraSmallUploads(tess, names('warm-p').slice(0, warm), pool, c, 'put');
  await bareSmallUploads(
    base,
    names('warm')
      .slice(0, warm)
      .map((_, i) => `warm_small_${i}`),
    pool,
    c,
  );
  await smallReads(tess, names('warm-a').slice(0, warm).map(imagePath), size, c);
  await smallReads(
    base,
    names('warm')
      .slice(0, warm)
      .map((_, i) => `/fragments/warm_small_${i}`),
    size,
    c,
  );

  const s = { put: [] as Run[], image: [] as Run[], chunked: [] as Run[], bare: [] as Run[], readT: [] as Run[], readB: [] as Run[] };
  const perSec = (r: Run) => n / (r.ms / 1000);
  const stored = ['warm-a', 'warm-b', 'warm-p'].flatMap((tag) => names(tag).slice(0, warm));
  for (let r = 0; r < cfg.smallRuns; r++) {
    const a = names(`a${r}`);
    const b = names(`b${r}`);
    const p = names(`p${r}`);
    stored.push(...a, ...b, ...p);
    const ids = Array.from({ length: n }, (_, i) => `small_${r}_${i}`);
    s.put.push(await measured('tessera', () => tesseraSmallUploads(tess, p, pool, c, 'put')));
    s.bare.push(await measured('bare', () => bareSmallUploads(base, ids, pool, c)));
    s.image.push(await measured('tessera', () => tesseraSmallUploads(tess, a, pool, c, 'uploadImage')));
    s.chunked.push(await measured('tessera', () => tesseraSmallUploads(tess, b, pool, c, 'chunked')));
    s.readT.push(await measured('tessera', () => smallReads(tess, a.map(imagePath), size, c), { createsFiles: false }));
    s.readB.push(
      await measured(
        'bare',
        () =>
          smallReads(
            base,
            ids.map((id) => `/fragments/${id}`),
            size,
            c,
          ),
        { createsFiles: false },
      ),
    );
    const last = (xs: Run[]) => perSec(xs.at(-1)!).toFixed(0);
    const dn = (xs: Run[]) => datanodeSplit(xs.at(-1)!, n);
    say(
      `small run ${r + 1}/${cfg.smallRuns}: stored/s PUT ${last(s.put)}, uploadImage ${last(s.image)}, chunked ${last(s.chunked)}, bare ${last(s.bare)}; read/s Tessera ${last(s.readT)}, bare ${last(s.readB)}; datanode CPU ms/image user/sys: PUT ${dn(s.put)}, uploadImage ${dn(s.image)}, chunked ${dn(s.chunked)}, bare ${dn(s.bare)}`,
    );
  }
  const ways = [
    { runs: s.put, text: 'PUT /images/{name} (the raw body)' },
    { runs: s.image, text: 'uploadImage (one multipart request)' },
    { runs: s.chunked, text: 'beginUpload + uploadFragment + completeUpload' },
  ];
  const fastest = ways.reduce((a, b) => (median(b.runs.map(perSec)) > median(a.runs.map(perSec)) ? b : a));
  const best = fastest.runs;
  const kb = (size / 1000).toFixed(0);
  figures.push({
    id: 'small_stored',
    label: `${kb} KB images stored per second, ${c} concurrent`,
    unit: '/s',
    tessera: median(best.map(perSec)),
    baseline: median(s.bare.map(perSec)),
    samples: { tessera: best.map(perSec), baseline: s.bare.map(perSec) },
    cpu: { unit: 'image', tessera: cpuPer(best, n), baseline: cpuPer(s.bare, n) },
    target: { kind: 'ratio-min', threshold: 0.85, text: '>= 0.85x bare' },
    note: `${fastest.text} is the fastest way: median PUT ${median(s.put.map(perSec)).toFixed(0)}/s (${median(s.put.map((r) => r.serverCpu / n)).toFixed(2)} coordinator CPU ms per image), uploadImage ${median(s.image.map(perSec)).toFixed(0)}/s (${median(s.image.map((r) => r.serverCpu / n)).toFixed(2)}), chunked ${median(s.chunked.map(perSec)).toFixed(0)}/s (${median(s.chunked.map((r) => r.serverCpu / n)).toFixed(2)})`,
  });
  figures.push({
    id: 'small_read',
    label: `${kb} KB images read per second, ${c} concurrent`,
    unit: '/s',
    tessera: median(s.readT.map(perSec)),
    baseline: median(s.readB.map(perSec)),
    samples: { tessera: s.readT.map(perSec), baseline: s.readB.map(perSec) },
    cpu: { unit: 'image', tessera: cpuPer(s.readT, n), baseline: cpuPer(s.readB, n) },
  });
  return stored;
}

/**
 * Sequential deletes, one at a time, on stored small images: the deleteImage mutation, and
 * DELETE /images/{name} (the same service call without the GraphQL layer), each on its own batch.
 */
async function deletes(tess: BenchHttp) {
  const pool = makePool(16, cfg.smallSize);
  const n = cfg.deleteCount;
  const del = `mutation($n: String!) { deleteImage(name: $n) }`;
  const viaGraphql = async (names: string[]) => {
    for (const name of names) {
      const { deleteImage } = await tess.graphql<{ deleteImage: boolean }>(del, { n: name });
      if (!deleteImage) throw new Error(`deleteImage(${name}) answered false`);
    }
  };
  const viaHttp = async (names: string[]) => {
    for (const name of names) {
      // An unencoded '/' is part of the name, as in an S3 key.
      const { status, body } = await tess.request('DELETE', `/images/${name.split('/').map(encodeURIComponent).join('/')}`);
      if (status !== 204) throw new Error(`DELETE /images/${name} answered ${status} ${body.toString()}`);
    }
  };
  const names = (tag: string) => Array.from({ length: n }, (_, i) => `bench/del/${tag}/${i}.jpg`);
  // Warm-up of both ways, untimed.
  const warm = names('warm').slice(0, Math.min(n, 200));
  await tesseraSmallUploads(tess, warm, pool, cfg.concurrency, 'uploadImage');
  await viaGraphql(warm.slice(0, warm.length / 2));
  await viaHttp(warm.slice(warm.length / 2));
  // The floor of a sequential GraphQL call here: the same number of image(name:) look-ups.
  const lookUpAll = async (names: string[]) => {
    for (const name of names) await tess.graphql(`query($n: String!) { image(name: $n) { size } }`, { n: name });
  };
  await lookUpAll(warm);
  const runs = { graphql: [] as Run[], http: [] as Run[], floor: [] as Run[] };
  const perSec = (r: Run) => n / (r.ms / 1000);
  for (let r = 0; r < cfg.smallRuns; r++) {
    const batch = { graphql: names(`r${r}`), http: names(`h${r}`) };
    await tesseraSmallUploads(tess, [...batch.graphql, ...batch.http], pool, cfg.concurrency, 'uploadImage'); // untimed
    await deleteImages(tess, []); // the uploads' own queued work settled before the timing
    runs.floor.push(await measured('tessera', () => lookUpAll(batch.graphql), { createsFiles: false }));
    runs.graphql.push(await measured('tessera', () => viaGraphql(batch.graphql), { createsFiles: false }));
    await deleteImages(tess, []); // the first batch's replica files gone: each way times its own deletes only
    runs.http.push(await measured('tessera', () => viaHttp(batch.http), { createsFiles: false }));
    await deleteImages(tess, []);
    say(
      `deletes run ${r + 1}/${cfg.smallRuns}: deleteImage ${perSec(runs.graphql.at(-1)!).toFixed(0)}/s, ` +
        `DELETE /images ${perSec(runs.http.at(-1)!).toFixed(0)}/s (image(name:) look-ups ${perSec(runs.floor.at(-1)!).toFixed(0)}/s)`,
    );
  }
  const target = { kind: 'min', threshold: 1753, text: '>= 1,753/s (the original)' } as const;
  const kb = (cfg.smallSize / 1000).toFixed(0);
  figures.push({
    id: 'deletes',
    label: `sequential deleteImage (GraphQL) of stored ${kb} KB images, one at a time`,
    unit: '/s',
    tessera: median(runs.graphql.map(perSec)),
    baseline: median(runs.floor.map(perSec)),
    samples: { tessera: runs.graphql.map(perSec), baseline: runs.floor.map(perSec) },
    target,
    note: `baseline: as many sequential image(name:) queries, the floor of one GraphQL call; ${n} deletes per run; the coordinator used ${cpuPer(runs.graphql, n).server.toFixed(2)} CPU ms per delete (${cpuPer(runs.floor, n).server.toFixed(2)} per look-up); replica files are removed in the background`,
  });
  figures.push({
    id: 'deletes_http',
    label: `sequential DELETE /images/{name} (HTTP) of stored ${kb} KB images, one at a time`,
    unit: '/s',
    tessera: median(runs.http.map(perSec)),
    baseline: median(runs.floor.map(perSec)),
    samples: { tessera: runs.http.map(perSec), baseline: runs.floor.map(perSec) },
    target,
    note: `baseline: the same image(name:) GraphQL look-ups; the coordinator used ${cpuPer(runs.http, n).server.toFixed(2)} CPU ms per delete; replica files are removed in the background`,
  });
}

async function memory(tess: BenchHttp, base: BenchHttp, cluster: Cluster, bare: BareProxy, pool: ReturnType<typeof makePool>) {
  const pids = cluster.pids();
  const datanodePids = Object.fromEntries(Object.entries(pids).filter(([name]) => name.startsWith('datanode')));
  const k = { inFlight: cfg.inFlight };
  const t = await peakRss({ coordinator: pids.coordinator, ...datanodePids }, () =>
    timed(() => tesseraUpload(tess, 'bench/rss', cfg.rssSize, pool, { ...k, encoding: 'multipart' })),
  );
  const b = await peakRss({ bare: bare.pid, ...datanodePids }, () =>
    timed(() => bareUpload(base, 'rss', cfg.rssSize, 2 * 1024 * 1024, pool, k)),
  );
  const maxDatanode = (peaks: Record<string, number>) =>
    Math.max(
      ...Object.entries(peaks)
        .filter(([n]) => n.startsWith('datanode'))
        .map(([, v]) => v),
    );
  const size = `${(cfg.rssSize / MB).toFixed(0)} MB upload`;
  figures.push({
    id: 'rss_coordinator',
    label: `coordinator peak RSS, ${size}`,
    unit: 'MB',
    tessera: t.peaks.coordinator / MB,
    baseline: b.peaks.bare / MB,
    samples: { tessera: [t.peaks.coordinator / MB], baseline: [b.peaks.bare / MB] },
    target: { kind: 'max', threshold: 200, text: '<= 200 MB' },
    note: `VmHWM after a reset, and VmRSS sampled every 50 ms; upload at ${mbps(cfg.rssSize, t.result.ms).toFixed(0)} MB/s (bare ${mbps(cfg.rssSize, b.result.ms).toFixed(0)})`,
  });
  figures.push({
    id: 'rss_datanode',
    label: `datanode peak RSS (largest of 3), ${size}`,
    unit: 'MB',
    tessera: maxDatanode(t.peaks) / MB,
    baseline: maxDatanode(b.peaks) / MB,
    samples: { tessera: [maxDatanode(t.peaks) / MB], baseline: [maxDatanode(b.peaks) / MB] },
  });
  await discardScenario(tess, base, ['bench/rss']);
}

async function listing(tess: BenchHttp, cluster: Cluster) {
  const query = `query($a: String) { images(first: 50, after: $a) { edges { cursor node { name size contentType sha256 createdAt url } } pageInfo { hasNextPage endCursor } } }`;
  const cursorOf = (name: string) => Buffer.from(name, 'utf8').toString('base64url');
  const pick = () => listingName(Math.floor(Math.random() * cfg.listRows));
  type Page = { images: { edges: unknown[] } };
  for (let i = 0; i < 50; i++) await tess.graphql<Page>(query, { a: cursorOf(pick()) }); // warm-up
  const gql: number[] = [];
  for (let i = 0; i < cfg.listQueries; i++) {
    const t = await timed(() => tess.graphql<Page>(query, { a: cursorOf(pick()) }));
    if (t.result.images.edges.length === 0) throw new Error('images() answered an empty page');
    gql.push(t.ms);
  }
  const raw = rawListing(cluster.dataDir);
  const sql: number[] = [];
  try {
    for (let i = 0; i < cfg.listQueries + 50; i++) {
      const after = pick();
      const t0 = performance.now();
      raw.page(after, 50);
      if (i >= 50) sql.push(performance.now() - t0);
    }
  } finally {
    raw.close();
  }
  const rows = cfg.listRows >= 1e6 ? `${cfg.listRows / 1e6}M` : `${cfg.listRows / 1e3}k`;
  const base = { unit: 'ms', samples: { tessera: gql, baseline: sql } };
  figures.push({
    id: 'listing_median',
    label: `images(first: 50, after:) median over ${rows} images`,
    ...base,
    tessera: median(gql),
    baseline: median(sql),
    target: { kind: 'max', threshold: 5, text: '<= 5 ms' },
    note: 'round trip of POST /graphql from the bench; baseline: the same SELECT on raw SQLite in the bench process',
  });
  figures.push({
    id: 'listing_p95',
    label: `images(first: 50, after:) p95 over ${rows} images`,
    ...base,
    tessera: percentile(gql, 95),
    baseline: percentile(sql, 95),
  });
}

const ORDER = [
  'upload_multipart',
  'upload_base64',
  'download',
  'cli_upload',
  'cli_download',
  'small_stored',
  'small_read',
  'deletes',
  'deletes_http',
  'rss_coordinator',
  'rss_datanode',
  'listing_median',
  'listing_p95',
];

const setup =
  flags.metadata === undefined
    ? 'metadata on SQLite'
    : `metadata on PostgreSQL, ${flags.coordinators} coordinator${flags.coordinators > 1 ? 's (requests sent to each in turn)' : ''}`;

try {
  await main();
  figures.sort((a, b) => ORDER.indexOf(a.id) - ORDER.indexOf(b.id));
  const meta = {
    config: { ...cfg, scenarios: [...wanted], quick, metadata: flags.metadata ? 'postgres' : 'sqlite', coordinators: flags.coordinators },
    machine: { cpus: os.cpus().length, node: process.version },
    durationSec: (performance.now() - started) / 1000,
  };
  out(
    flags.json
      ? json(figures, meta)
      : `\n${table(figures)}\n\n${meta.durationSec.toFixed(0)} s, ${os.cpus().length} cores, RF ${REPLICAS}, 3 datanodes on loopback, ${setup}`,
  );
  await cleanup();
  process.exit(0);
} catch (err) {
  if (!interrupted) say(`failed: ${(err as Error).stack ?? err}`);
  await cleanup();
  process.exit(interrupted ? 130 : 2);
}
