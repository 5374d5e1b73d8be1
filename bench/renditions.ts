// `npm run bench:renditions [-- --quick]`: renditions on a real cluster (npm start: coordinator +
// 3 datanodes, as processes) beside their baselines in the same run, alternating runs, medians:
// - renditions made per second of a 12-megapixel JPEG to a 300 px WebP through GET
//   /images/{name}?w=300&format=webp&q=… (every request a new variant, so each is made and
//   cached) beside sharp called directly in this process on the same file, same parameters and
//   the same number at once (goal >= 0.8x), with the CPU each side used per rendition (steadier
//   than rates on a shared machine: see cpuPerRendition). Sharp direct runs the coordinator's
//   own pipeline (render.ts: same options, same libvips settings, sharp's operation cache off on
//   both sides), both sides are warmed up first (the coordinator's JavaScript runs cold for its
//   first renditions: some 4 ms more per rendition) and take turns going first;
// - cached renditions served per second beside plain downloads of a file of the same size (goal >= 0.9x).
// `--no-rendition-cache` starts the cluster with --rendition-cache-bytes 0: a diagnostic of what
// writing each made rendition into the cluster costs (the served figure then has nothing to serve).
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import sharp from 'sharp';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import { createHttp, type BenchHttp } from './http.ts';
import { cleanup, freePortBlock, removeOnCleanup, startCluster, type Cluster } from './processes.ts';
import { median, table, type Figure } from './report.ts';
import { cpuMs, mainThreadCpuMs } from './rss.ts';
import { indexFile } from './listing.ts';
import { inFlight } from './workloads.ts';
import { imagePath } from '../src/image-paths.ts';
import { makeConfig } from '../src/config.ts';
import { renditionFromQuery, type RenditionParams } from '../src/renditions/params.ts';
// Also what sets libvips up as the coordinator has it (its operation cache off).
import { renditionPipeline } from '../src/renditions/render.ts';

const program = new Command('npm run bench:renditions --')
  .option('--quick', 'a fast smoke run: fewer renditions and one run', false)
  .option('--json', 'print the figures as JSON', false)
  .option('--no-rendition-cache', 'diagnostic: no rendition cache (made renditions are not written to the cluster)')
  .parse();
const { quick, json, renditionCache } = program.opts<{ quick: boolean; json: boolean; renditionCache: boolean }>();
const RUNS = quick ? 1 : 3;
const MADE_PER_RUN = quick ? 8 : 20;
const SERVED_PER_RUN = quick ? 300 : 2000;
/** Renditions each side makes before the runs, not counted (qualities 90 and up: no run asks for them). */
const WARM_UP = quick ? 2 : 6;
/** The coordinator's default --rendition-concurrency: sharp gets as many at once. */
const AT_ONCE = 2;
const SERVE_CONCURRENCY = 8;
const say = (line: string) => process.stderr.write(`${line}\n`);

/** A 4000x3000 JPEG with texture (a flat image would decode unrealistically fast). */
async function twelveMegapixelJpeg(): Promise<Buffer> {
  const noise = await sharp({
    create: { width: 4000, height: 3000, channels: 3, background: 'gray', noise: { type: 'gaussian', mean: 128, sigma: 40 } },
  })
    .blur(1.5)
    .jpeg({ quality: 88 })
    .toBuffer();
  return sharp(noise).withMetadata({ orientation: 6 }).jpeg({ quality: 88 }).toBuffer();
}

const UPLOAD = 'mutation($n: String!, $f: File!) { uploadImage(name: $n, file: $f) { name } }';

async function perSecond(count: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await inFlight(count, concurrency, task);
  return count / (Number(process.hrtime.bigint() - t) / 1e9);
}

async function expectOk(http: BenchHttp, p: string, type?: string): Promise<number> {
  const answer = await http.request('GET', p);
  if (answer.status !== 200 || (type && answer.headers['content-type'] !== type))
    throw new Error(`GET ${p}: ${answer.status} ${answer.body.subarray(0, 200).toString()}`);
  return answer.body.length;
}

/** CPU ms (user + system) this process has used so far: the sharp baseline runs here. */
const ownCpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

/**
 * CPU ms per rendition of each side of one run. Both sides share the machine's 2 cores, so when
 * they are busy the rate ratio follows these: sharp's in this process for the baseline; for
 * Tessera the coordinator's (the request, sharp, writing the rendition into the cache), the
 * datanodes' (storing its replicas) and this process's (the bench's HTTP client, which the
 * baseline does not need). Read from /proc in 10 ms ticks: about 0.5 ms per rendition at 20.
 */
interface RunCpu {
  sharp: number;
  coordinator: number;
  /** Of which the coordinator's main thread: the request and the cache write in JavaScript. */
  coordinatorMain: number;
  datanodes: number;
  client: number;
}

const cpuPerRendition = (runs: RunCpu[]) => ({
  sharp: median(runs.map((r) => r.sharp)),
  coordinator: median(runs.map((r) => r.coordinator)),
  coordinatorMain: median(runs.map((r) => r.coordinatorMain)),
  datanodes: median(runs.map((r) => r.datanodes)),
  client: median(runs.map((r) => r.client)),
  /** Per run, sharp's CPU over the whole of Tessera's, then the median. */
  ratio: median(runs.map((r) => r.sharp / (r.coordinator + r.datanodes + r.client))),
});

const RENDITION_QUERY = (quality: number) => `w=300&format=webp&q=${quality}`;
const MAX_PIXELS = makeConfig({ dataDir: '' }).renditionMaxPixels;
/** The parameters the coordinator takes from the same query string (its default limits). */
const sameParams = (quality: number): RenditionParams =>
  renditionFromQuery(new URLSearchParams(RENDITION_QUERY(quality)), { maxSize: 4096, allowedSizes: [] })!;

/** The two sides of one run: `count` renditions at qualities from `first`, AT_ONCE at a time. */
function madeSides(http: BenchHttp, jpeg: Buffer) {
  return {
    sharp: (first: number, count: number) =>
      perSecond(count, AT_ONCE, (i) => renditionPipeline(jpeg, sameParams(first + i), MAX_PIXELS).toBuffer()),
    tessera: (first: number, count: number) =>
      perSecond(count, AT_ONCE, (i) => expectOk(http, `${imagePath('bench/12mp.jpg')}?${RENDITION_QUERY(first + i)}`, 'image/webp')),
  };
}

async function made(http: BenchHttp, cluster: Cluster, jpeg: Buffer): Promise<Figure> {
  const samples = { tessera: [] as number[], baseline: [] as number[] };
  const cpu: RunCpu[] = [];
  const pids = cluster.pids();
  const datanodePids = Object.entries(pids)
    .filter(([name]) => name.startsWith('datanode'))
    .map(([, pid]) => pid);
  const clusterCpu = () => ({
    coordinator: cpuMs(pids.coordinator),
    coordinatorMain: mainThreadCpuMs(pids.coordinator),
    datanodes: datanodePids.reduce((sum, pid) => sum + cpuMs(pid), 0),
    client: ownCpuMs(),
  });
  const sides = madeSides(http, jpeg);
  await sides.sharp(90, WARM_UP);
  await sides.tessera(90, WARM_UP);
  let cached = renditionCache ? WARM_UP : 0;
  for (let run = 0, q = 20; run < RUNS; run++, q += MADE_PER_RUN) {
    const sharpSide = async () => {
      const before = ownCpuMs();
      samples.baseline.push(await sides.sharp(q, MADE_PER_RUN));
      return (ownCpuMs() - before) / MADE_PER_RUN;
    };
    const tesseraSide = async () => {
      const before = clusterCpu();
      samples.tessera.push(await sides.tessera(q, MADE_PER_RUN));
      // A made rendition is written into the cache after its answer: the side ends once that is done.
      if (renditionCache) await cacheSettled(cluster, (cached += MADE_PER_RUN));
      const after = clusterCpu();
      const per = (k: keyof typeof after) => (after[k] - before[k]) / MADE_PER_RUN;
      return {
        coordinator: per('coordinator'),
        coordinatorMain: per('coordinatorMain'),
        datanodes: per('datanodes'),
        client: per('client'),
      };
    };
    // Each side goes first in turn: neither always meets the load the other left behind.
    if (run % 2 === 0) {
      const sharpCpu = await sharpSide();
      cpu.push({ sharp: sharpCpu, ...(await tesseraSide()) });
    } else {
      const tesseraCpu = await tesseraSide();
      cpu.push({ sharp: await sharpSide(), ...tesseraCpu });
    }
    const c = cpu.at(-1)!;
    say(
      `  made run ${run + 1}: tessera ${samples.tessera.at(-1)!.toFixed(1)}/s, sharp ${samples.baseline.at(-1)!.toFixed(1)}/s; ` +
        `CPU ms per rendition: coordinator ${c.coordinator.toFixed(1)} (main thread ${c.coordinatorMain.toFixed(1)}) + datanodes ${c.datanodes.toFixed(1)} + bench client ${c.client.toFixed(1)} vs sharp ${c.sharp.toFixed(1)}`,
    );
  }
  const c = cpuPerRendition(cpu);
  return {
    id: renditionCache ? 'renditions-made' : 'renditions-made-uncached',
    label: `12 MP JPEG -> 300 px WebP made${renditionCache ? '' : ', not cached (diagnostic)'} (vs sharp direct)`,
    unit: 'renditions/s',
    tessera: median(samples.tessera),
    baseline: median(samples.baseline),
    target: { kind: 'ratio-min', threshold: 0.8, text: '>= 0.8x' },
    samples,
    cpu: {
      unit: 'rendition',
      baselineName: 'sharp',
      tessera: { server: c.coordinator, datanodes: c.datanodes },
      baseline: { server: c.sharp, datanodes: 0 },
    },
    note:
      `CPU ms per rendition (medians): coordinator ${c.coordinator.toFixed(1)} (main thread ${c.coordinatorMain.toFixed(1)}: request and cache write) + datanodes ${c.datanodes.toFixed(1)} + bench client ` +
      `${c.client.toFixed(1)} vs sharp ${c.sharp.toFixed(1)}: CPU ratio ${c.ratio.toFixed(2)}x`,
  };
}

/**
 * Waits (up to 10 s) until the cache holds `count` renditions, i.e. every made one was written,
 * read from the index file (no request to the coordinator, whose CPU is being counted).
 */
async function cacheSettled(cluster: Cluster, count: number): Promise<void> {
  if (count === 0) return;
  const db = new Database(indexFile(cluster.dataDir), { readonly: true, fileMustExist: true });
  try {
    const held = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM renditions');
    for (let i = 0; i < 500; i++) {
      if (held.get()!.n >= count) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    say(`  (the rendition cache did not reach ${count} renditions in 10 s)`);
  } finally {
    db.close();
  }
}

async function served(http: BenchHttp): Promise<Figure> {
  const rendition = `${imagePath('bench/12mp.jpg')}?w=300&format=webp&q=80`;
  const size = await expectOk(http, rendition);
  const same = Buffer.alloc(size, 7);
  await http.graphqlMultipart(UPLOAD, { n: 'bench/same-size.bin' }, 'f', same);
  const samples = { tessera: [] as number[], baseline: [] as number[] };
  for (let run = 0; run < RUNS; run++) {
    samples.baseline.push(await perSecond(SERVED_PER_RUN, SERVE_CONCURRENCY, () => expectOk(http, imagePath('bench/same-size.bin'))));
    samples.tessera.push(await perSecond(SERVED_PER_RUN, SERVE_CONCURRENCY, () => expectOk(http, rendition, 'image/webp')));
    say(
      `  served run ${run + 1}: rendition ${samples.tessera.at(-1)!.toFixed(0)}/s, download ${samples.baseline.at(-1)!.toFixed(0)}/s (${size} bytes)`,
    );
  }
  return {
    id: 'renditions-served',
    label: `cached rendition served (vs download of ${size} B)`,
    unit: 'requests/s',
    tessera: median(samples.tessera),
    baseline: median(samples.baseline),
    target: { kind: 'ratio-min', threshold: 0.9, text: '>= 0.9x' },
    samples,
  };
}

async function main() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bench-renditions-'));
  removeOnCleanup(dataDir);
  const port = await freePortBlock(5);
  const cluster = await startCluster(dataDir, port, {
    args: ['--scrub-rate', '0', '--rate-limit', '0', ...(renditionCache ? [] : ['--rendition-cache-bytes', '0'])],
  });
  const load = () =>
    os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ');
  const loadBefore = load();
  const http = createHttp(cluster.url, 64, { authorization: `Bearer ${cluster.token}` });
  try {
    for (
      let i = 0;
      i < 100 &&
      (await http.graphql<{ datanodes: { status: string }[] }>('{ datanodes { status } }')).datanodes.filter((d) => d.status === 'UP')
        .length < 3;
      i++
    )
      await new Promise((r) => setTimeout(r, 200));
    const jpeg = await twelveMegapixelJpeg();
    say(`12 MP JPEG: ${jpeg.length} bytes`);
    await http.graphqlMultipart(UPLOAD, { n: 'bench/12mp.jpg' }, 'f', jpeg);
    const figures = [await made(http, cluster, jpeg), ...(renditionCache ? [await served(http)] : [])];
    // Rates on a shared machine move with what else runs: the load average goes with the figures.
    const loadNote = `load average (1, 5, 15 min) ${loadBefore} at the start, ${load()} at the end`;
    process.stdout.write(json ? `${JSON.stringify({ load: loadNote, figures }, null, 2)}\n` : `${table(figures)}\n${loadNote}\n`);
  } finally {
    http.close();
    await cluster.stop();
    await cleanup();
  }
}

await main();
