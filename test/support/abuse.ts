// The memory and event-loop abuse cases (README, "Limits"), each run against a real coordinator process
// (with real datanode processes) whose RSS is read from /proc while a second client keeps asking
// it a small query: shared by test/abuse-memory.test.ts and by scripts measuring before/after.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.ts';
import { startDatanodeProcess, type DatanodeProcess } from './datanode-process.ts';
import { createGraphQLClient, type GraphQLResponse } from './graphql.ts';
import { tokenFor } from './tokens.ts';

const SECRET = 'abuse-test-secret';
export const MiB = 1024 * 1024;

/** Resident set size of a process in bytes (VmRSS), or 0 once it is gone. */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export interface AbuseCluster {
  url: string;
  coordinator: CoordinatorProcess;
  gql: ReturnType<typeof createGraphQLClient>;
  close(): Promise<void>;
}

/** Two datanode processes and a coordinator process (RF 2, 2 MiB fragments) in a temp dir. */
export async function startAbuseCluster(extraArgs: string[] = []): Promise<AbuseCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-abuse-'));
  const nodes: DatanodeProcess[] = [];
  let coordinator: CoordinatorProcess | undefined;
  try {
    for (let i = 0; i < 2; i++) nodes.push(await startDatanodeProcess({ dataDir: join(dir, `dn${i}`), secret: SECRET }));
    coordinator = await startCoordinatorProcess({
      dataDir: join(dir, 'coordinator'),
      secret: SECRET,
      // glibc arenas as `npm run coordinator` sets them.
      env: { MALLOC_ARENA_MAX: '2' },
      args: ['--health-interval-ms', '200', ...nodes.flatMap((n) => ['--datanode', n.url]), ...extraArgs],
    });
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const c = coordinator;
  const gql = createGraphQLClient(() => c.url);
  // Wait until both datanodes are UP.
  for (let i = 0; i < 200; i++) {
    const res = await gql.request('{ cluster { liveDatanodeCount } }');
    if (res.data?.cluster?.liveDatanodeCount === 2) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: c.url,
    coordinator: c,
    gql,
    async close() {
      await c.stop();
      await Promise.all(nodes.map((n) => n.stop()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One stored image of `fragments` fragments of 2 MiB (uploadImage), for fragmentData. */
export async function seedImage(cluster: AbuseCluster, name: string, fragments: number): Promise<void> {
  const form = new FormData();
  form.append(
    'operations',
    JSON.stringify({
      query: 'mutation($n: String!, $f: File!) { uploadImage(name: $n, file: $f) { name } }',
      variables: { n: name, f: null },
    }),
  );
  form.append('map', JSON.stringify({ 0: ['variables.f'] }));
  form.append('0', new Blob([Buffer.alloc(fragments * 2 * MiB, 7)]), 'seed.bin');
  const res = await fetch(`${cluster.url}/graphql`, { method: 'POST', body: form });
  const body = (await res.json()) as GraphQLResponse;
  if (body.errors) throw new Error(`seed upload failed: ${JSON.stringify(body.errors)}`);
}

/** `count` one-byte images named prefix-00000… (for listings). */
export async function seedSmallImages(cluster: AbuseCluster, prefix: string, count: number): Promise<void> {
  const one = async (i: number) => {
    const form = new FormData();
    form.append(
      'operations',
      JSON.stringify({
        query: 'mutation($n: String!, $f: File!) { uploadImage(name: $n, file: $f) { name } }',
        variables: { n: `${prefix}-${String(i).padStart(5, '0')}`, f: null },
      }),
    );
    form.append('map', JSON.stringify({ 0: ['variables.f'] }));
    form.append('0', new Blob([Buffer.from([i & 255])]), 'x.bin');
    const res = await fetch(`${cluster.url}/graphql`, { method: 'POST', body: form });
    await res.arrayBuffer();
  };
  const queue = Array.from({ length: count }, (_, i) => i);
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) await one(i);
    }),
  );
}

export interface AbuseFigures {
  /** What the abusive request(s) got: HTTP status and the first error code, or what failed. */
  outcome: string;
  codes: string[];
  /** Time until the abusive request(s) were answered (or failed). */
  ms: number;
  /** Highest VmRSS of the coordinator seen while it ran. */
  peakRssMB: number;
  /** The slowest answer the other client got meanwhile, and how many of its queries failed. */
  otherClientMaxMs: number;
  otherClientFailures: number;
  coordinatorAlive: boolean;
}

/**
 * Runs `abuse` while sampling the coordinator's RSS every 20 ms and a second client asks
 * `{ cluster { imageCount } }` in a loop; the figures of the run.
 */
export async function measure(cluster: AbuseCluster, abuse: () => Promise<{ outcome: string; codes: string[] }>): Promise<AbuseFigures> {
  const pid = cluster.coordinator.pid;
  let peak = rssOf(pid);
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 20);
  let running = true;
  let otherMax = 0;
  let otherFailures = 0;
  const other = (async () => {
    while (running) {
      const t = performance.now();
      try {
        const res = await cluster.gql.request('{ cluster { imageCount } }');
        if (res.errors) otherFailures += 1;
      } catch {
        otherFailures += 1;
      }
      otherMax = Math.max(otherMax, performance.now() - t);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const t0 = performance.now();
  let result: { outcome: string; codes: string[] };
  try {
    result = await abuse();
  } catch (err) {
    result = { outcome: `failed: ${(err as Error).message.slice(0, 200)}`, codes: [] };
  }
  const ms = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 200)); // the RSS the answer left behind
  running = false;
  await other;
  clearInterval(sampler);
  return {
    ...result,
    ms: Math.round(ms),
    peakRssMB: Math.round(peak / MiB),
    otherClientMaxMs: Math.round(otherMax),
    otherClientFailures: otherFailures,
    coordinatorAlive: cluster.coordinator.process.exitCode === null && cluster.coordinator.process.signalCode === null,
  };
}

const summarize = (responses: { status: number; body: GraphQLResponse | undefined; error?: string }[]) => {
  const codes = responses.flatMap((r) => (r.body?.errors ?? []).map((e) => String(e.extensions?.code)));
  const statuses = [...new Set(responses.map((r) => r.error ?? String(r.status)))];
  const withData = responses.filter((r) => r.body?.data && Object.values(r.body.data).some((v) => v !== null)).length;
  return { outcome: `HTTP ${statuses.join(',')}; ${withData}/${responses.length} answered with data`, codes: [...new Set(codes)] };
};

async function post(url: string, body: string): Promise<{ status: number; body: GraphQLResponse | undefined; error?: string }> {
  try {
    const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) };
    } catch {
      return { status: res.status, body: undefined };
    }
  } catch (err) {
    return { status: 0, body: undefined, error: `fetch failed (${(err as Error).cause ?? (err as Error).message})` };
  }
}

export const aliases = (n: number, field: string) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ')} }`;

/** A 60 MB query: `{ image(name: [1 1 1 …]) }`. */
export const bigQuery = (url: string) => async () => {
  const query = `{ image(name: [${'1 '.repeat(30 * MiB)}]) { name } }`;
  return summarize([await post(url, JSON.stringify({ query }))]);
};

/** `count` parallel queries of `n` aliases of fragmentData. */
export const fragmentDataAliases =
  (url: string, image: string, n: number, count = 1) =>
  async () =>
    summarize(
      await Promise.all(
        Array.from({ length: count }, () =>
          post(url, JSON.stringify({ query: aliases(n, `fragmentData(name: "${image}", index: 0) { data }`) })),
        ),
      ),
    );

/** `n` aliases of images(first: 1000). */
export const listingAliases = (url: string, n: number) => async () =>
  summarize([await post(url, JSON.stringify({ query: aliases(n, 'images(first: 1000) { edges { node { name size sha256 } } }') }))]);

/**
 * `uploads` chunked uploads of 9 fragments of 2 MiB that send fragments 1..8 (as multipart) but
 * never fragment 0: each one's out-of-order window holds the 8 early fragments.
 */
export const pinnedWindows = (cluster: AbuseCluster, uploads: number) => async () => {
  const data = Buffer.alloc(2 * MiB, 3);
  const responses = [];
  for (let u = 0; u < uploads; u++) {
    const begin = await cluster.gql.request('mutation($i: BeginUploadInput!) { beginUpload(input: $i) { id } }', {
      i: { name: `pinned-${u}-${Date.now()}`, size: 9 * 2 * MiB },
    });
    const id = begin.data?.beginUpload?.id;
    if (!id) return { outcome: `beginUpload failed: ${JSON.stringify(begin.errors)}`, codes: [] };
    for (let i = 1; i <= 8; i++) {
      const res = await cluster.gql.multipart(
        'mutation($u: ID!, $i: Int!, $f: File) { uploadFragment(uploadId: $u, index: $i, file: $f) { index } }',
        { u: id, i, f: null },
        { 'variables.f': { data } },
      );
      responses.push({ status: res.status, body: res as GraphQLResponse });
    }
  }
  return summarize(responses);
};

/**
 * A raw multipart POST on a socket: the headers announce `declared` bytes, `send` bytes of a
 * file part follow, then the socket stalls. Resolves with what the server answered (or that it
 * closed the socket) once it does, or after `waitMs`.
 */
export function stalledMultipart(
  url: string,
  opts: { declared: number; send: number; query: string; waitMs: number },
): Promise<{ answered: string; afterMs: number }> {
  const { hostname, port } = new URL(url);
  const boundary = 'abuseboundary';
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${JSON.stringify({ query: opts.query, variables: { f: null } })}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.f"]}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="f.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  return new Promise((resolve) => {
    const t0 = performance.now();
    const socket = net.connect(Number(port), hostname);
    let answer = '';
    const done = (what: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ answered: what, afterMs: Math.round(performance.now() - t0) });
    };
    const timer = setTimeout(() => done('nothing (still waiting)'), opts.waitMs);
    socket.on('data', (d) => {
      answer += d.toString('latin1');
      if (/\r\n\r\n[\s\S]*\}/.test(answer)) done(answer.split('\r\n')[0] + ' ' + (/"code":"([A-Z_]+)"/.exec(answer)?.[1] ?? ''));
    });
    socket.on('error', () => done(answer ? answer.split('\r\n')[0] : 'socket error'));
    socket.on('close', () =>
      done(answer ? answer.split('\r\n')[0] + ' ' + (/"code":"([A-Z_]+)"/.exec(answer)?.[1] ?? '') : 'closed by the server'),
    );
    socket.write(
      `POST /graphql HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Bearer ${tokenFor(url)}\r\nX-GraphQL-Yoga-CSRF: 1\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${opts.declared}\r\n\r\n`,
    );
    socket.write(head);
    let left = opts.send;
    const block = Buffer.alloc(256 * 1024, 1);
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, block.length);
        left -= n;
        if (!socket.write(block.subarray(0, n))) return void socket.once('drain', pump);
      }
    };
    pump();
  });
}

/**
 * One graphql-ws client that opens `subscriptions` datanodeHealth subscriptions and then stops
 * reading its socket (reading again after `readAgainAfterMs`, if given, to learn how the server
 * ended it). Resolves once the server closed it, or after `waitMs`.
 */
export function greedyWsClient(
  url: string,
  subscriptions: number,
  waitMs: number,
  readAgainAfterMs?: number,
): Promise<{ outcome: string; codes: string[]; closeCode?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    const codes = new Set<string>();
    let errors = 0;
    let closeCode: number | undefined;
    let resume: NodeJS.Timeout | undefined;
    const finish = (outcome: string) => {
      clearTimeout(timer);
      clearTimeout(resume);
      ws.terminate();
      resolve({ outcome: `${outcome}; ${errors} error messages`, codes: [...codes], closeCode });
    };
    const timer = setTimeout(() => finish('still open'), waitMs);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${tokenFor(url)}` } })));
    ws.on('message', (raw) => {
      const msg = JSON.parse(String(raw));
      if (msg.type === 'connection_ack') {
        for (let i = 0; i < subscriptions; i++)
          ws.send(
            JSON.stringify({
              id: String(i),
              type: 'subscribe',
              payload: { query: 'subscription { datanodeHealth { at status datanode { id url storedBytes } } }' },
            }),
          );
        // Stop reading: the server's writes pile up in its socket buffer.
        const socket = (ws as unknown as { _socket: net.Socket })._socket;
        socket.pause();
        if (readAgainAfterMs !== undefined) resume = setTimeout(() => socket.resume(), readAgainAfterMs);
      } else if (msg.type === 'error') {
        errors += 1;
        for (const e of msg.payload ?? []) if (e.extensions?.code) codes.add(e.extensions.code);
      }
    });
    ws.on('close', (code, reason) => {
      closeCode = code;
      finish(`closed by the server: ${code} ${String(reason).slice(0, 80)}`);
    });
    ws.on('error', (err) => finish(`error: ${err.message}`));
  });
}
