// Re-replication bench: how long from a datanode's death (kill -9) until every fragment again
// has R verified copies on live datanodes, and what client upload throughput is during that
// repair versus without it. Real processes: a coordinator and 3 datanodes on loopback, RF 2,
// default 2 MiB fragments, default --repair-rate; data under a temp dir removed at the end.
//
//   npx tsx bench/repair.ts [--gib 1] [--runs 3] [--repair-after 1] [--health-interval-ms 2000]
//                           [--upload-mib 128] [--in-flight 4] [--repair-rate <bytes/s>]
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { listeningLine, startChild } from '../src/launcher/child-process.ts';

const FRAGMENT = 2 * 1024 * 1024;
const MiB = 1024 * 1024;

const opts = new Command('bench-repair')
  .option('--gib <n>', 'GiB of image data stored before the datanode dies', Number, 1)
  .option('--runs <n>', 'runs of each measurement (a fresh cluster per repair run)', Number, 3)
  .option('--repair-after <s>', "the coordinator's --repair-after", Number, 1)
  .option('--health-interval-ms <ms>', "the coordinator's --health-interval-ms (default: its default)", Number, 2000)
  .option('--repair-rate <bytes/s>', "the coordinator's --repair-rate (default: its default)")
  .option('--upload-mib <n>', 'size of each client upload timed for throughput', Number, 128)
  .option('--in-flight <n>', 'fragments a client upload keeps in flight', Number, 4)
  .parse()
  .opts<{
    gib: number;
    runs: number;
    repairAfter: number;
    healthIntervalMs: number;
    repairRate?: string;
    uploadMib: number;
    inFlight: number;
  }>();

const SECRET = randomBytes(16).toString('hex');
process.once('SIGINT', () => process.exit(130));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const log = (line: string) => process.stderr.write(`${line}\n`);

/** Spawns a tsx entry and resolves with its listening URL (its one JSON line on stdout). */
async function startProcess(entry: string, args: string[]): Promise<{ url: string; child: ChildProcess; stop: () => Promise<unknown> }> {
  const child = await startChild({
    name: entry,
    args: ['--import', 'tsx', entry, ...args],
    env: { ...process.env, TESSERA_CLUSTER_SECRET: SECRET, LOG_LEVEL: 'warn' },
    keep: 8192,
    graceMs: 10_000,
    timeoutMs: 60_000,
    ready: listeningLine,
  });
  return { url: child.ready.url, child: child.process, stop: () => child.stop() };
}

function client(baseUrl: string, token: string) {
  const base = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  function post(headers: http.OutgoingHttpHeaders, body: Buffer[]): Promise<any> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          hostname: base.hostname,
          port: base.port,
          path: '/graphql',
          method: 'POST',
          agent,
          headers: { authorization: `Bearer ${token}`, ...headers, 'content-length': body.reduce((n, b) => n + b.length, 0) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const answer = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            if (answer.errors?.length) reject(new Error(answer.errors.map((e: any) => `${e.extensions?.code}: ${e.message}`).join('; ')));
            else resolve(answer.data);
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      for (const b of body) req.write(b);
      req.end();
    });
  }
  const gql = (query: string, variables: Record<string, unknown> = {}) =>
    post({ 'content-type': 'application/json', accept: 'application/json' }, [Buffer.from(JSON.stringify({ query, variables }))]);

  /** One fragment as a GraphQL multipart request (the binary fast path). */
  function sendFragment(uploadId: string, index: number, data: Buffer) {
    const boundary = `----bench${randomBytes(8).toString('hex')}`;
    const operations = JSON.stringify({
      query: 'mutation($u: ID!, $i: Int!, $f: File) { uploadFragment(uploadId: $u, index: $i, file: $f) { index } }',
      variables: { u: uploadId, i: index, f: null },
    });
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${operations}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.f"]}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="f.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    return post({ 'content-type': `multipart/form-data; boundary=${boundary}`, 'x-graphql-yoga-csrf': '1' }, [
      head,
      data,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
  }

  /** A chunked upload of `bytes` of fresh random data; resolves with the time it took (ms). */
  async function upload(name: string, bytes: number, inFlight: number): Promise<number> {
    const pool = Array.from({ length: 8 }, () => randomBytes(FRAGMENT));
    const t0 = performance.now();
    const session = (
      await gql('mutation($i: BeginUploadInput!) { beginUpload(input: $i) { id fragmentCount } }', { i: { name, size: bytes } })
    ).beginUpload;
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        for (let i = next++; i < session.fragmentCount; i = next++) {
          const size = Math.min(FRAGMENT, bytes - i * FRAGMENT);
          // A distinct fragment each time (a counter in the first bytes), cut from the pool.
          const data = Buffer.from(pool[i % pool.length].subarray(0, size));
          data.writeUInt32BE(i, 0);
          await sendFragment(session.id, i, data);
        }
      }),
    );
    await gql('mutation($u: ID!) { completeUpload(uploadId: $u) { name } }', { u: session.id });
    return performance.now() - t0;
  }

  return { gql, upload, close: () => agent.destroy() };
}

interface Cluster {
  dir: string;
  coordinator: ChildProcess;
  datanodes: { url: string; child: ChildProcess; stop: () => Promise<unknown> }[];
  api: ReturnType<typeof client>;
  close(): Promise<void>;
}

async function startCluster(): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-bench-repair-'));
  const datanodes = await Promise.all(
    [0, 1, 2].map((i) => startProcess('datanode/main.ts', ['--port', '0', '--data-dir', join(dir, `datanode-${i}`)])),
  );
  const args = [
    '--port',
    '0',
    '--data-dir',
    join(dir, 'coordinator'),
    '--repair-after',
    String(opts.repairAfter),
    '--health-interval-ms',
    String(opts.healthIntervalMs),
  ];
  if (opts.repairRate) args.push('--repair-rate', opts.repairRate);
  for (const d of datanodes) args.push('--datanode', d.url);
  const coordinator = await startProcess('src/main.ts', args);
  // The admin token the coordinator wrote on its first start.
  const api = client(coordinator.url, (await readFile(join(dir, 'coordinator', 'admin.token'), 'utf8')).trim());
  return {
    dir,
    coordinator: coordinator.child,
    datanodes,
    api,
    async close() {
      api.close();
      await coordinator.stop();
      await Promise.all(datanodes.map((d) => d.stop()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const STATUS = '{ cluster { underReplicatedFragments } datanodes { url status } }';

/** Stores `gib` GiB as images of 256 MiB. */
async function fill(c: Cluster) {
  const total = opts.gib * 1024 * MiB;
  const t0 = performance.now();
  for (let stored = 0, i = 0; stored < total; i++) {
    const size = Math.min(256 * MiB, total - stored);
    await c.api.upload(`fill-${i}.bin`, size, opts.inFlight);
    stored += size;
  }
  return performance.now() - t0;
}

/** Kills datanode 0 and times: DOWN seen, repair started, every fragment back to 2 live copies. */
async function killAndTime(c: Cluster, during?: () => Promise<void>) {
  const victim = c.datanodes[0];
  const held = await fragmentsOn(c, victim.url);
  const t0 = performance.now();
  victim.child.kill('SIGKILL');
  let down = 0;
  let started = 0;
  let peak = 0;
  let duringRun: Promise<void> | undefined;
  for (;;) {
    const s = await c.api.gql(STATUS);
    const now = performance.now() - t0;
    const under = s.cluster.underReplicatedFragments as number;
    if (!down && s.datanodes.find((d: any) => d.url === victim.url)?.status === 'DOWN') down = now;
    if (down) {
      peak = Math.max(peak, under);
      if (!started && under < peak) {
        started = now;
        if (during) duringRun = during();
      }
      if (under === 0 && (!during || duringRun)) {
        await duringRun;
        return { downMs: down, startedMs: started || now, doneMs: now, fragments: held, peak };
      }
    }
    await sleep(100);
  }
}

async function fragmentsOn(c: Cluster, url: string): Promise<number> {
  const s = await c.api.gql('{ datanodes { url fragmentCount } }');
  return s.datanodes.find((d: any) => d.url === url).fragmentCount;
}

async function main() {
  const sizeMiB = opts.uploadMib;
  log(
    `bench/repair: ${opts.gib} GiB stored, 3 datanodes, RF 2, 2 MiB fragments, --repair-after ${opts.repairAfter}, --health-interval-ms ${opts.healthIntervalMs}, --repair-rate ${opts.repairRate ?? 'default'}; ${opts.runs} runs`,
  );

  // 1. Death → full re-replication, no client load.
  const repairs: { downMs: number; startedMs: number; doneMs: number; fragments: number }[] = [];
  for (let run = 0; run < opts.runs; run++) {
    const c = await startCluster();
    try {
      const fillMs = await fill(c);
      await sleep(opts.healthIntervalMs + 500); // a fresh health sample (fragmentCount) of every datanode
      const r = await killAndTime(c);
      repairs.push(r);
      log(
        `  run ${run + 1}: filled in ${(fillMs / 1000).toFixed(1)} s; ${r.fragments} fragments (${((r.fragments * 2) / 1024).toFixed(2)} GiB) on the killed datanode; DOWN after ${(r.downMs / 1000).toFixed(1)} s, copying from ${(r.startedMs / 1000).toFixed(1)} s, done at ${(r.doneMs / 1000).toFixed(1)} s`,
      );
    } finally {
      await c.close();
    }
  }

  // 2. Client upload throughput without repair, then while a repair runs (same cluster).
  const c = await startCluster();
  const baseline: number[] = [];
  const duringRepair: number[] = [];
  let overlapped = true;
  try {
    await fill(c);
    for (let i = 0; i < opts.runs; i++)
      baseline.push((sizeMiB * MiB) / 1e6 / ((await c.api.upload(`base-${i}.bin`, sizeMiB * MiB, opts.inFlight)) / 1000));
    await sleep(opts.healthIntervalMs + 500);
    const r = await killAndTime(c, async () => {
      for (let i = 0; i < opts.runs; i++) {
        duringRepair.push((sizeMiB * MiB) / 1e6 / ((await c.api.upload(`during-${i}.bin`, sizeMiB * MiB, opts.inFlight)) / 1000));
        const under = (await c.api.gql(STATUS)).cluster.underReplicatedFragments;
        if (under === 0) overlapped = false;
      }
    });
    log(
      `  under load: repair done at ${(r.doneMs / 1000).toFixed(1)} s after the kill${overlapped ? '' : ' (WARNING: the repair ended before the last timed upload)'}`,
    );
  } finally {
    await c.close();
  }

  const result = {
    storedGiB: opts.gib,
    runs: opts.runs,
    killedDatanodeFragments: repairs.map((r) => r.fragments),
    deathToDownS: median(repairs.map((r) => r.downMs)) / 1000,
    deathToCopyStartS: median(repairs.map((r) => r.startedMs)) / 1000,
    deathToFullyReplicatedS: median(repairs.map((r) => r.doneMs)) / 1000,
    copyPhaseS: median(repairs.map((r) => r.doneMs - r.startedMs)) / 1000,
    copyMBps: median(repairs.map((r) => (r.fragments * FRAGMENT) / 1e6 / ((r.doneMs - r.startedMs) / 1000))),
    uploadMBpsWithoutRepair: median(baseline),
    uploadMBpsDuringRepair: median(duringRepair),
    uploadSizeMiB: sizeMiB,
    allDuringRepair: overlapped,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    log(`bench/repair failed: ${(err as Error).stack}`);
    process.exit(1);
  },
);
