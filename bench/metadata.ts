// `npm run bench:metadata [-- --postgres <admin-url>]`: what one small image costs the metadata
// engine itself, SQLite and PostgreSQL, through the MetadataStore the coordinator uses: the
// upload row with its owner (quota check), write intents, fragment + 3 replicas + completion in
// one transaction, a listing page, then the delete transaction. One at a time (latency) and 8 in
// flight (throughput); medians of the runs. PostgreSQL runs in a fresh database, dropped after.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import postgres from 'postgres';
import { openSqliteMetadata, type MetadataStore } from '../src/metadata/store.ts';
import { openPostgresMetadata } from '../src/metadata/postgres/index.ts';

const positive = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`a positive whole number (got "${v}")`);
  return n;
};
const flags = new Command('npm run bench:metadata --')
  .option(
    '--postgres <admin-url>',
    'PostgreSQL server to make the database on',
    process.env.TESSERA_TEST_POSTGRES_URL ?? 'postgres://127.0.0.1:5432/test',
  )
  .option('--no-postgres', 'SQLite only')
  .option('--images <n>', 'small images per run', positive, 1000)
  .option('--runs <n>', 'runs per figure', positive, 5)
  .option('--concurrency <n>', 'images in flight for the throughput figure', positive, 8)
  .parse()
  .opts<{ postgres: string | false; images: number; runs: number; concurrency: number }>();

const NODES = ['dn-a', 'dn-b', 'dn-c'];
const LIMITS = { maxOpenUploads: 1_000_000, maxReservedBytes: Number.MAX_SAFE_INTEGER };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One small image through the index, from its upload row to its deletion. */
async function oneImage(store: MetadataStore, tag: string, i: number): Promise<void> {
  const now = Date.now();
  const { row } = await store.uploadOwners.insertOwnedUpload(
    {
      name: `${tag}/${String(i).padStart(6, '0')}.jpg`,
      uploadId: randomBytes(12).toString('base64url'),
      size: 100_000,
      contentType: 'image/jpeg',
      sha256: null,
      fragmentSize: 2 * 1024 * 1024,
      fragmentCount: 1,
      createdAt: now,
      expiresAt: now + 86_400_000,
    },
    'bench-token',
    LIMITS,
    now,
  );
  const fragmentId = randomBytes(16).toString('base64url');
  await store.catalog.addWriteIntents(fragmentId, NODES);
  const sha = randomBytes(32).toString('hex');
  const done = await store.catalog.recordOnlyFragmentAndComplete(
    { id: fragmentId, imageId: row!.id, imageKey: row!.imageKey, idx: 0, size: 100_000, sha256: sha },
    NODES,
    sha,
    now,
  );
  if (done !== 'done') throw new Error(`completion answered ${String(done)}`);
  await store.catalog.listImages({ first: 100, prefix: `${tag}/` });
  await store.catalog.deleteImage(row!.id, now);
}

/** µs per image over `n` images, `inFlight` at a time. */
async function timedRun(store: MetadataStore, tag: string, n: number, inFlight: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) await oneImage(store, tag, next++);
    }),
  );
  return ((performance.now() - t0) * 1000) / n;
}

async function measure(name: string, store: MetadataStore): Promise<void> {
  for (const id of NODES) await store.datanodes.insert(id, `http://127.0.0.1:1/${id}`, Date.now());
  await timedRun(store, 'warm', 100, 1);
  const serial: number[] = [];
  const parallel: number[] = [];
  for (let r = 0; r < flags.runs; r++) {
    serial.push(await timedRun(store, `s${r}`, flags.images, 1));
    parallel.push(await timedRun(store, `p${r}`, flags.images, flags.concurrency));
  }
  const fmt = (xs: number[]) =>
    `${median(xs).toFixed(0)} µs/image (${(1e6 / median(xs)).toFixed(0)} images/s; runs ${xs.map((x) => x.toFixed(0)).join(', ')})`;
  console.log(`${name}\n  one at a time: ${fmt(serial)}\n  ${flags.concurrency} in flight:   ${fmt(parallel)}`);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bench-metadata-'));
try {
  const sqlite = openSqliteMetadata(path.join(dir, 'index.sqlite'));
  await measure('SQLite', sqlite).finally(() => sqlite.close());
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

if (flags.postgres) {
  const admin = new URL(flags.postgres);
  if (!admin.username) admin.username = os.userInfo().username;
  const name = `tessera_bench_${process.pid}_${Date.now().toString(36)}`;
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  await sql.unsafe(`CREATE DATABASE ${name}`);
  try {
    const url = new URL(admin);
    url.pathname = `/${name}`;
    const store = await openPostgresMetadata(url.toString(), pino({ level: 'warn' }));
    await measure('PostgreSQL', store).finally(() => store.close());
    // The same without waiting for the WAL flush at each commit (a URL parameter a user may set:
    // a server crash may then lose the last commits, as SQLite's synchronous=normal on power loss).
    url.searchParams.set('synchronous_commit', 'off');
    const relaxed = await openPostgresMetadata(url.toString(), pino({ level: 'warn' }));
    await relaxed.sql('TRUNCATE images, replica_deletions, write_intents, datanodes CASCADE', []);
    await measure('PostgreSQL, synchronous_commit=off', relaxed).finally(() => relaxed.close());
  } finally {
    await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await sql.end();
  }
}
