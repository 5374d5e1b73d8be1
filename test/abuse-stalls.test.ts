// Issue 9's abuse cases that hold a connection open, against a real coordinator process (real
// datanode processes, RSS from /proc): multipart bodies that stall halfway (the body timeout and
// the shared budget for buffered bodies) and a graphql-ws client flooding subscribes while it
// does not read. Each is refused with a code, another client is served meanwhile, RSS < 320 MB.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { greedyWsClient, measure, MiB, stalledMultipart, startAbuseCluster, type AbuseCluster } from './support/abuse.ts';
import { expectServed } from './support/abuse-expect.ts';

const BODY_TIMEOUT_SEC = 3;
const haveProc = existsSync('/proc/self/status');
const uploadImage = (name: string) => `mutation($f: File!) { uploadImage(name: "${name}", file: $f) { name } }`;

describe.skipIf(!haveProc)('stalled bodies and subscribe floods on a real coordinator (RSS from /proc)', () => {
  let cluster: AbuseCluster;
  // Default --max-upload-image-size (64 MiB): the stalled bodies are of a size a legitimate uploadImage may have.
  beforeAll(async () => {
    cluster = await startAbuseCluster(['--body-timeout', String(BODY_TIMEOUT_SEC)]);
  }, 120_000);
  afterAll(() => cluster?.close());

  it('a body that stops arriving is dropped after --body-timeout with REQUEST_TIMEOUT', async () => {
    const r = await stalledMultipart(cluster.url, { declared: 10 * MiB, send: 4 * MiB, query: uploadImage('stalled-one'), waitMs: 30_000 });
    expect(r.answered).toMatch(/^HTTP\/1\.1 408 .*REQUEST_TIMEOUT$/);
    expect(r.afterMs).toBeGreaterThanOrEqual(BODY_TIMEOUT_SEC * 1000 - 100);
  }, 60_000);

  it('8 bodies stalled at 40 of 60 MB: past the buffered-bodies budget they are refused with SERVER_BUSY', async () => {
    let answers: string[] = [];
    const f = await measure(cluster, async () => {
      const r = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          stalledMultipart(cluster.url, { declared: 60 * MiB, send: 40 * MiB, query: uploadImage(`stalled-${i}`), waitMs: 60_000 }),
        ),
      );
      answers = r.map((x) => x.answered);
      return { outcome: answers.join(' | '), codes: [...new Set(answers.map((a) => /[A-Z_]+$/.exec(a)?.[0] ?? a))] };
    });
    // Those the budget refused answer at once; the ones it held until they stalled, at the timeout.
    for (const a of answers) expect(a).toMatch(/^HTTP\/1\.1 (503 .*SERVER_BUSY|408 .*REQUEST_TIMEOUT)$/);
    expect(answers.filter((a) => a.endsWith('SERVER_BUSY')).length).toBeGreaterThanOrEqual(5); // 96 MiB hold two bodies of 40 MB
    expectServed(f);
  }, 120_000);

  it('a lone uploadImage near --max-upload-image-size still works (a body alone always fits the budget)', async () => {
    const form = new FormData();
    form.append('operations', JSON.stringify({ query: uploadImage('lone-big'), variables: { f: null } }));
    form.append('map', JSON.stringify({ 0: ['variables.f'] }));
    form.append('0', new Blob([Buffer.alloc(60 * MiB, 5)]), 'big.bin');
    const res = await fetch(`${cluster.url}/graphql`, { method: 'POST', body: form });
    const body = (await res.json()) as { data?: { uploadImage?: { name: string } }; errors?: unknown };
    expect(body.errors).toBeUndefined();
    expect(body.data?.uploadImage?.name).toBe('lone-big');
  }, 120_000);

  it('a graphql-ws client flooding 20,000 subscribes without reading is closed with 4429', async () => {
    let closeCode: number | undefined;
    // It reads again after 1 s only to learn the close code: the server cuts a silent client off
    // 5 s after the close frame, with a reset that would discard the frame unread.
    const f = await measure(cluster, async () => {
      const r = await greedyWsClient(cluster.url, 20_000, 60_000, 1_000);
      closeCode = r.closeCode;
      return r;
    });
    expect(closeCode).toBe(4429);
    expect(f.outcome).toMatch(/closed by the server: 4429 TOO_MANY_SUBSCRIPTIONS/);
    expectServed(f);
  }, 120_000);
});
