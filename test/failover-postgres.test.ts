// "The CLI given two URLs, the first of them killed mid-upload, finishes the upload": two real
// coordinators on one PostgreSQL database (test/support/postgres.ts; skipped with the reason when
// there is none), three real datanodes registered through a --coordinator list, and `tessera
// upload` given both URLs; the first coordinator is killed with SIGKILL once part of the
// fragments are stored. The CLI moves to the second, asks it which fragments it has, sends the
// rest and completes there; the image is byte-identical from the surviving coordinator.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postgresAvailable, useTestDatabase } from './support/postgres.ts';
import { startPgCluster, type PgCluster } from './support/pg-cluster.ts';
import { startCli, stopAllCli } from './support/cli-process.ts';
import { untilValue } from './support/poll.ts';

const FRAGMENT = 256 * 1024;
const FRAGMENTS = 96;
const pg = await postgresAvailable();
const skip = pg.reason;

describe.skipIf(skip !== undefined)(`two coordinators on one PostgreSQL database${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const db = useTestDatabase();
  let dir: string;
  let cluster: PgCluster;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-failover-pg-'));
    cluster = await startPgCluster(dir, db.url, { count: 2, args: ['--fragment-size', String(FRAGMENT)] });
  }, 120_000);
  afterAll(async () => {
    await stopAllCli();
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the CLI given two URLs, the first of them killed mid-upload, finishes the upload', async () => {
    const [first, second] = cluster.coordinators;
    const bytes = randomBytes(FRAGMENTS * FRAGMENT - 1000);
    await writeFile(join(dir, 'big.tiff'), bytes);
    const stateDir = join(dir, 'cli-state');
    const run = startCli(['upload', '--json', '--parallel', '2', 'big.tiff'], dir, {
      TESSERA_URL: `${first.url},${second.url}`,
      TESSERA_TOKEN: cluster.token,
      TESSERA_STATE_DIR: stateDir,
    });

    // The upload's id from the CLI's resume ledger, then its progress as the second coordinator sees it.
    const uploadId = await untilValue(
      async () => {
        const ledger = await readFile(join(stateDir, 'uploads.json'), 'utf8').catch(() => '');
        return ledger ? (JSON.parse(ledger).uploads[0]?.uploadId as string | undefined) : undefined;
      },
      'the upload in the CLI ledger',
      { timeoutMs: 30_000, intervalMs: 20, unless: run.done },
    );
    const storedBeforeKill = await untilValue(
      async () => {
        const { upload } = await cluster.gql<{ upload: { receivedFragments: number[] } | null }>(
          second,
          'query($id: ID!) { upload(id: $id) { receivedFragments } }',
          { id: uploadId },
        );
        const n = upload?.receivedFragments.length ?? 0;
        return n >= 8 ? n : undefined;
      },
      'eight fragments stored',
      { timeoutMs: 30_000, intervalMs: 20, unless: run.done },
    );
    first.kill('SIGKILL');
    expect(storedBeforeKill).toBeLessThan(FRAGMENTS); // the kill lands mid-upload

    const result = await run.done;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const [uploaded] = JSON.parse(result.stdout);
    expect(uploaded).toMatchObject({
      name: 'big.tiff',
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      uploadId,
      fragmentCount: FRAGMENTS,
    });

    const res = await fetch(`${second.url}/images/big.tiff`, { headers: { authorization: `Bearer ${cluster.token}` } });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    const ledger = JSON.parse(await readFile(join(stateDir, 'uploads.json'), 'utf8'));
    expect(ledger.uploads).toEqual([]);
  }, 120_000);
});
