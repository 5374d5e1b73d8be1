// `npm run bench:renditions [-- --quick]`: renditions on a real cluster (npm start: coordinator +
// 3 datanodes, as processes) beside their baselines in the same run, alternating runs, medians:
// - renditions made per second of a 12-megapixel JPEG to a 300 px WebP through GET
//   /images/{name}?w=300&format=webp&q=… (every request a new variant, so each is made and
//   cached) beside sharp called directly in this process on the same file, same parameters and
//   the same number at once (goal >= 0.8x);
// - cached renditions served per second beside plain downloads of a file of the same size (goal >= 0.9x).
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import sharp from 'sharp';
import { Command } from 'commander';
import { createHttp, type BenchHttp } from './http.ts';
import { cleanup, freePortBlock, removeOnCleanup, startCluster } from './processes.ts';
import { median, table, type Figure } from './report.ts';
import { imagePath, inFlight } from './workloads.ts';

const program = new Command('npm run bench:renditions --')
  .option('--quick', 'a fast smoke run: fewer renditions and one run', false)
  .option('--json', 'print the figures as JSON', false)
  .parse();
const { quick, json } = program.opts<{ quick: boolean; json: boolean }>();
const RUNS = quick ? 1 : 3;
const MADE_PER_RUN = quick ? 8 : 20;
const SERVED_PER_RUN = quick ? 300 : 2000;
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

async function made(http: BenchHttp, jpeg: Buffer): Promise<Figure> {
  const samples = { tessera: [] as number[], baseline: [] as number[] };
  let q = 20;
  for (let run = 0; run < RUNS; run++) {
    const first = q;
    samples.baseline.push(
      await perSecond(MADE_PER_RUN, AT_ONCE, (i) =>
        sharp(jpeg)
          .rotate()
          .resize({ width: 300 })
          .webp({ quality: first + i })
          .toBuffer(),
      ),
    );
    samples.tessera.push(
      await perSecond(MADE_PER_RUN, AT_ONCE, (i) =>
        expectOk(http, `${imagePath('bench/12mp.jpg')}?w=300&format=webp&q=${first + i}`, 'image/webp'),
      ),
    );
    q += MADE_PER_RUN;
    say(`  made run ${run + 1}: tessera ${samples.tessera.at(-1)!.toFixed(1)}/s, sharp ${samples.baseline.at(-1)!.toFixed(1)}/s`);
  }
  return {
    id: 'renditions-made',
    label: '12 MP JPEG -> 300 px WebP made (vs sharp direct)',
    unit: 'renditions/s',
    tessera: median(samples.tessera),
    baseline: median(samples.baseline),
    target: { kind: 'ratio-min', threshold: 0.8, text: '>= 0.8x' },
    samples,
  };
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
  const cluster = await startCluster(dataDir, port, { args: ['--scrub-rate', '0', '--rate-limit', '0'] });
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
    const figures = [await made(http, jpeg), await served(http)];
    process.stdout.write(json ? `${JSON.stringify(figures, null, 2)}\n` : `${table(figures)}\n`);
  } finally {
    http.close();
    await cluster.stop();
    await cleanup();
  }
}

await main();
