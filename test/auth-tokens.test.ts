// Client tokens end to end on a real cluster: created, listed, expired and revoked (a revoked
// token stops at once, its live SSE and graphql-ws subscriptions too), signed image URLs
// (download until expiry, 403 when expired or altered), per-token quotas and rate limits, and
// --anonymous.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { codeOf } from './support/graphql.ts';
import { rawFetch } from './support/tokens.ts';
import { subscribeSse, subscribeWs } from './support/subscriptions.ts';
import { uploadImage } from './support/images.ts';
import { testClock, type TestClock } from './support/clock.ts';

const CREATE = `mutation($n: String!, $r: Role!, $e: Int) { createToken(name: $n, role: $r, expiresIn: $e) { secret token { id name role expiresAt revokedAt active } } }`;
const TOKENS = `{ tokens { id name role revokedAt active } }`;
const REVOKE = `mutation($id: ID!) { revokeToken(id: $id) }`;
const CLUSTER = `{ cluster { imageCount } }`;
const SIGNED = `query($n: String!, $e: Int) { image(name: $n) { url(expiresIn: $e) } }`;
const BEGIN = `mutation($i: BeginUploadInput!) { beginUpload(input: $i) { id } }`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function newToken(cluster: TestCluster, role: 'read' | 'write' | 'admin', name: string = role, expiresIn: number | null = null) {
  const { createToken } = await cluster.gql(CREATE, { n: name, r: role, e: expiresIn });
  return {
    id: createToken.token.id as string,
    secret: createToken.secret as string,
    bearer: { authorization: `Bearer ${createToken.secret}` },
    token: createToken.token,
  };
}

describe('tokens, revocation and signed URLs', () => {
  let cluster: TestCluster;
  // The expiry cases hold the coordinator's clock until their first call has been answered: a
  // slow machine cannot then make that call late (support/clock.ts).
  let clock: TestClock;
  beforeAll(async () => {
    clock = testClock();
    cluster = await startCluster({ datanodes: 2 });
    await uploadImage(cluster, 'cat.png', Buffer.from('a cat, signed'));
    await uploadImage(cluster, 'dog.png', Buffer.from('a dog'));
  });
  afterEach(() => clock.release());
  afterAll(async () => {
    await cluster?.close();
    clock?.restore();
  });

  it('createToken returns a random secret once; the index keeps only its hash; tokens lists it', async () => {
    const a = await newToken(cluster, 'write', 'ci');
    const b = await newToken(cluster, 'write', 'ci');
    expect(a.secret).toMatch(/^tsr_[A-Za-z0-9_-]{43}$/);
    expect(a.secret).not.toBe(b.secret);
    expect(a.token).toMatchObject({ name: 'ci', role: 'write', expiresAt: null, revokedAt: null, active: true });
    const [stored] = await cluster.app.indexSql('SELECT * FROM tokens WHERE id = ?', a.id);
    expect(JSON.stringify(stored)).not.toContain(a.secret.slice(4));
    expect(stored.hash).toMatch(/^[0-9a-f]{64}$/);
    const { tokens } = await cluster.gql(TOKENS);
    expect(tokens.find((t: { id: string }) => t.id === a.id)).toMatchObject({ name: 'ci', role: 'write', active: true });
    expect(JSON.stringify(tokens)).not.toContain(a.secret);
  });

  it('bad token input is BAD_USER_INPUT and creates nothing', async () => {
    const before = (await cluster.gql(TOKENS)).tokens.length;
    expect(codeOf(await cluster.gql.request(CREATE, { n: ' ', r: 'read', e: null }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await cluster.gql.request(CREATE, { n: 'x', r: 'read', e: 0 }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await cluster.gql.request(CREATE, { n: 'x', r: 'root', e: null }))).toBe('BAD_USER_INPUT');
    expect((await cluster.gql(TOKENS)).tokens.length).toBe(before);
  });

  it('a revoked token stops at once: requests answer 401, its SSE and graphql-ws subscriptions end', async () => {
    const t = await newToken(cluster, 'read', 'soon revoked');
    expect((await cluster.gql(CLUSTER, {}, t.bearer)).cluster.imageCount).toBeGreaterThan(0);
    const sse = await subscribeSse(cluster.url, 'subscription { datanodeHealth { status } }', {}, t.bearer);
    const ws = await subscribeWs(cluster.url, 'subscription { datanodeHealth { status } }', {}, t.bearer);
    await Promise.all([sse.waitFor(() => true, 'a sample'), ws.waitFor(() => true, 'a sample')]);

    expect((await cluster.gql(REVOKE, { id: t.id })).revokeToken).toBe(true);
    const res = await cluster.gql.request(CLUSTER, {}, t.bearer);
    expect(res.status).toBe(401);
    expect(codeOf(res)).toBe('UNAUTHENTICATED');
    expect((await rawFetch(`${cluster.url}/images/cat.png`, { headers: t.bearer })).status).toBe(401);
    // Both subscriptions end: the SSE stream completes, the socket closes.
    await expect(sse.until(() => false, 'the end', 10_000)).rejects.toThrow(/ended/);
    await expect(ws.until(() => false, 'the end', 10_000)).rejects.toThrow(/4401|revoked|ended/);
    await Promise.all([sse.close(), ws.close()]);

    expect((await cluster.gql(REVOKE, { id: t.id })).revokeToken).toBe(false); // already revoked
    const listed = (await cluster.gql(TOKENS)).tokens.find((x: { id: string }) => x.id === t.id);
    expect(listed).toMatchObject({ active: false });
    expect(listed.revokedAt).not.toBeNull();
  });

  it('an expired token answers UNAUTHENTICATED', async () => {
    clock.hold();
    const t = await newToken(cluster, 'read', 'short', 2);
    expect((await cluster.gql(CLUSTER, {}, t.bearer)).cluster).toBeDefined();
    clock.release();
    await sleep(2500);
    const res = await cluster.gql.request(CLUSTER, {}, t.bearer);
    expect(res.status).toBe(401);
    expect(codeOf(res)).toBe('UNAUTHENTICATED');
  });

  it('a signed URL downloads without a token; altered, it answers 403 SIGNED_URL_INVALID', async () => {
    const reader = await newToken(cluster, 'read', 'page');
    const { image } = await cluster.gql(SIGNED, { n: 'cat.png', e: 300 }, reader.bearer);
    const url = new URL(image.url);
    expect(url.pathname).toBe('/images/cat.png');
    expect(url.searchParams.get('signature')).toBeTruthy();
    const ok = await rawFetch(url);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('a cat, signed');
    // Without the signature, the same URL needs a token.
    expect((await rawFetch(`${cluster.url}/images/cat.png`)).status).toBe(401);

    const altered = [
      new URL(url.href.replace('/images/cat.png', '/images/dog.png')), // another image
      (() => {
        const u = new URL(url);
        u.searchParams.set('expires', String(Number(u.searchParams.get('expires')) + 3600));
        return u;
      })(),
      (() => {
        const u = new URL(url);
        const s = u.searchParams.get('signature')!;
        u.searchParams.set('signature', (s[0] === 'A' ? 'B' : 'A') + s.slice(1));
        return u;
      })(),
      (() => {
        const u = new URL(url);
        u.searchParams.set('token', 'someone-else');
        return u;
      })(),
      (() => {
        const u = new URL(url);
        u.searchParams.set('expires', 'soon');
        return u;
      })(),
    ];
    for (const u of altered) {
      const res = await rawFetch(u);
      expect(res.status, u.href).toBe(403);
      expect((await res.json()).code).toBe('SIGNED_URL_INVALID');
    }
  });

  it('a signed URL expires: 403 SIGNED_URL_EXPIRED', async () => {
    clock.hold();
    const { image } = await cluster.gql(SIGNED, { n: 'cat.png', e: 2 });
    expect((await rawFetch(image.url)).status).toBe(200);
    clock.release();
    await sleep(3200);
    const res = await rawFetch(image.url);
    expect(res.status).toBe(403);
    expect((await res.json()).code).toBe('SIGNED_URL_EXPIRED');
  });

  it('a signed URL stops when the token that signed it is revoked', async () => {
    const t = await newToken(cluster, 'read', 'signer');
    const { image } = await cluster.gql(SIGNED, { n: 'cat.png', e: 300 }, t.bearer);
    expect((await rawFetch(image.url)).status).toBe(200);
    await cluster.gql(REVOKE, { id: t.id });
    const res = await rawFetch(image.url);
    expect(res.status).toBe(403);
    expect((await res.json()).code).toBe('SIGNED_URL_INVALID');
  });

  it('expiresIn is bounded (1 s to 7 days); url without it is the plain URL', async () => {
    expect(codeOf(await cluster.gql.request(SIGNED, { n: 'cat.png', e: 0 }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await cluster.gql.request(SIGNED, { n: 'cat.png', e: 7 * 86400 + 1 }))).toBe('BAD_USER_INPUT');
    expect((await cluster.gql(SIGNED, { n: 'cat.png', e: null })).image.url).toBe(`${cluster.url}/images/cat.png`);
  });
});

describe('quotas and limits per token', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({
      datanodes: 2,
      config: { maxOpenUploadsPerToken: 2, maxReservedBytesPerToken: 1_000_000, maxSubscriptionsPerToken: 2, maxWsConnectionsPerToken: 2 },
    });
  });
  afterAll(() => cluster?.close());

  it('open uploads past the limit answer QUOTA_EXCEEDED and reserve nothing; another token is not affected', async () => {
    const a = await newToken(cluster, 'write', 'a');
    const b = await newToken(cluster, 'write', 'b');
    const first = await cluster.gql(BEGIN, { i: { name: 'q/1', size: 10 } }, a.bearer);
    await cluster.gql(BEGIN, { i: { name: 'q/2', size: 10 } }, a.bearer);
    const third = await cluster.gql.request(BEGIN, { i: { name: 'q/3', size: 10 } }, a.bearer);
    expect(codeOf(third)).toBe('QUOTA_EXCEEDED');
    expect(codeOf(await cluster.gql.request(BEGIN, { i: { name: 'q/3', size: 10 } }, b.bearer))).toBeUndefined(); // the name was not taken
    // Aborting one frees a slot.
    await cluster.gql(`mutation($u: ID!) { abortUpload(uploadId: $u) }`, { u: first.beginUpload.id }, a.bearer);
    expect(codeOf(await cluster.gql.request(BEGIN, { i: { name: 'q/4', size: 10 } }, a.bearer))).toBeUndefined();
  });

  it('bytes reserved past the limit answer QUOTA_EXCEEDED', async () => {
    const c = await newToken(cluster, 'write', 'c');
    await cluster.gql(BEGIN, { i: { name: 'big/1', size: 600_000 } }, c.bearer);
    const res = await cluster.gql.request(BEGIN, { i: { name: 'big/2', size: 600_000 } }, c.bearer);
    expect(codeOf(res)).toBe('QUOTA_EXCEEDED');
    expect(res.errors![0].message).toMatch(/1000000/);
    expect(codeOf(await cluster.gql.request(`{ image(name: "big/2") { name } }`, {}, c.bearer))).toBeUndefined();
  });

  it('live subscriptions past the limit answer QUOTA_EXCEEDED; one ends, another may start', async () => {
    const r = await newToken(cluster, 'read', 'subs');
    const Q = 'subscription { datanodeHealth { status } }';
    const s1 = await subscribeSse(cluster.url, Q, {}, r.bearer);
    const s2 = await subscribeWs(cluster.url, Q, {}, r.bearer);
    await Promise.all([s1.waitFor(() => true), s2.waitFor(() => true)]);
    const s3 = await subscribeSse(cluster.url, Q, {}, r.bearer);
    await expect(s3.until(() => false, 'an error', 10_000)).rejects.toThrow(/live subscriptions/);
    await s3.close();
    await s1.close();
    await new Promise((res) => setTimeout(res, 300));
    const s4 = await subscribeSse(cluster.url, Q, {}, r.bearer);
    await s4.waitFor(() => true, 'a sample after one ended');
    await Promise.all([s2.close(), s4.close()]);
  });

  it('graphql-ws connections past the limit are closed with 4429', async () => {
    const r = await newToken(cluster, 'read', 'sockets');
    const open = () =>
      new Promise<{ ws: WebSocket; acked: boolean; code?: number }>((resolve) => {
        const ws = new WebSocket(`${cluster.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
        ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: r.bearer })));
        ws.once('message', (m) => resolve({ ws, acked: JSON.parse(String(m)).type === 'connection_ack' }));
        ws.once('close', (code) => resolve({ ws, acked: false, code }));
      });
    const [one, two] = [await open(), await open()];
    expect([one.acked, two.acked]).toEqual([true, true]);
    const three = await open();
    expect(three).toMatchObject({ acked: false, code: 4429 });
    one.ws.close();
    await new Promise((res) => one.ws.once('close', res));
    await new Promise((res) => setTimeout(res, 200));
    const four = await open();
    expect(four.acked).toBe(true);
    for (const c of [two, four]) c.ws.close();
  });
});

describe('rate limits and --anonymous read', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ datanodes: 2, config: { rateLimitPerSec: 5, anonymous: 'read' } });
    await uploadImage(cluster, 'open.png', Buffer.from('for everyone'));
  });
  afterAll(() => cluster?.close());

  it('past its rate a token gets 429 RATE_LIMITED with Retry-After; another token is still served', async () => {
    const admin = { authorization: `Bearer ${cluster.adminToken}` };
    const { createToken } = await cluster.gql(CREATE, { n: 'busy', r: 'read', e: null }, admin);
    const busy = { authorization: `Bearer ${createToken.secret}` };
    const answers = await Promise.all(
      Array.from({ length: 40 }, () =>
        rawFetch(`${cluster.url}/graphql`, {
          method: 'POST',
          headers: { ...busy, 'content-type': 'application/json' },
          body: JSON.stringify({ query: CLUSTER }),
        }),
      ),
    );
    const limited = answers.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(answers.filter((r) => r.status === 200).length).toBeGreaterThan(0);
    expect(limited[0].headers.get('retry-after')).toMatch(/^\d+$/);
    expect((await limited[0].json()).errors[0].extensions.code).toBe('RATE_LIMITED');
    // GET /images counts too.
    const downloads = await Promise.all(Array.from({ length: 20 }, () => rawFetch(`${cluster.url}/images/open.png`, { headers: busy })));
    const refused = downloads.find((r) => r.status === 429);
    expect(refused).toBeDefined();
    expect((await refused!.json()).code).toBe('RATE_LIMITED');
    await sleep(1200);
    const other = await rawFetch(`${cluster.url}/graphql`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ query: CLUSTER }),
    });
    expect(other.status).toBe(200);
  });

  it('--anonymous read: queries and downloads work without a token, mutations answer FORBIDDEN, a bad token is still 401', async () => {
    await sleep(1200); // a fresh rate window for the anonymous principal
    const post = (query: string, headers: Record<string, string> = {}) =>
      rawFetch(`${cluster.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query }),
      });
    const q = await post(CLUSTER);
    expect(q.status).toBe(200);
    expect((await q.json()).data.cluster.imageCount).toBe(1);
    const m = await post(`mutation { deleteImage(name: "open.png") }`);
    expect(m.status).toBe(403);
    expect((await m.json()).errors[0].extensions.code).toBe('FORBIDDEN');
    const d = await rawFetch(`${cluster.url}/images/open.png`);
    expect(d.status).toBe(200);
    expect(await d.text()).toBe('for everyone');
    expect((await post(CLUSTER, { authorization: 'Bearer tsr_wrong' })).status).toBe(401);
    expect((await post('{ tokens { id } }')).status).toBe(403);
  });
});
