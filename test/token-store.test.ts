// The token store's verified tokens: a request costs an index read at most once per
// VERIFIED_TOKEN_TTL_MS per token, yet a revocation here refuses the token at once, one told by
// another coordinator (forget) too, one nobody told of within the TTL; an expiry is checked on
// every request; a read in flight during a revocation is not kept; unknown secrets are never kept.
import { expect, it } from 'vitest';
import { createTokenStore, VERIFIED_TOKEN_TTL_MS } from '../src/auth/tokens.ts';
import type { TokenRow, TokenRows } from '../src/metadata/tokens.ts';

/** Tokens in memory, counting the reads by hash; `hold` makes the next read wait until released. */
function memoryRows() {
  const byHash = new Map<string, TokenRow>();
  let reads = 0;
  let held: Promise<void> | undefined;
  const rows: TokenRows = {
    async byHash(hash) {
      reads += 1;
      const row = byHash.get(hash);
      const copy = row && { ...row };
      if (held) await held;
      return copy;
    },
    byId: async (id) => [...byHash.values()].find((r) => r.id === id),
    all: async () => [...byHash.values()],
    insert: async (row, hash) => void byHash.set(hash, { ...row, revokedAt: null }),
    async revoke(id, now) {
      const row = [...byHash.values()].find((r) => r.id === id && r.revokedAt === null);
      if (row) row.revokedAt = now;
      return row !== undefined;
    },
    activeAdminCount: async () => 0,
  };
  return {
    rows,
    reads: () => reads,
    /** Revoked in the index behind the store's back (through another coordinator). */
    revokeBehind: (id: string) => [...byHash.values()].forEach((r) => r.id === id && (r.revokedAt = 1)),
    hold() {
      let release!: () => void;
      held = new Promise((r) => (release = r));
      return () => {
        held = undefined;
        release();
      };
    },
  };
}

function setup() {
  let t = 1_000_000;
  const index = memoryRows();
  const store = createTokenStore(index.rows, () => t);
  return { index, store, advance: (ms: number) => (t += ms) };
}

it('an active token is read from the index once per VERIFIED_TOKEN_TTL_MS, not at every request', async () => {
  const { index, store, advance } = setup();
  const { token, secret } = await store.create('ci', 'write');
  for (let i = 0; i < 5; i++) expect((await store.authenticate(secret))?.id).toBe(token.id);
  expect(index.reads()).toBe(1);
  advance(VERIFIED_TOKEN_TTL_MS);
  expect((await store.authenticate(secret))?.id).toBe(token.id);
  expect(index.reads()).toBe(2);
});

it('a token revoked here is refused at the very next request', async () => {
  const { store } = setup();
  const { token, secret } = await store.create('ci', 'write');
  expect(await store.authenticate(secret)).toBeDefined();
  expect(await store.revoke(token.id)).toBe(true);
  expect(await store.authenticate(secret)).toBeUndefined();
});

it('a token revoked through another coordinator: refused at once when told (forget), within the TTL when not', async () => {
  const { index, store, advance } = setup();
  const told = await store.create('told', 'read');
  const untold = await store.create('untold', 'read');
  expect(await store.authenticate(told.secret)).toBeDefined();
  expect(await store.authenticate(untold.secret)).toBeDefined();
  index.revokeBehind(told.token.id);
  index.revokeBehind(untold.token.id);

  store.forget(told.token.id);
  expect(await store.authenticate(told.secret)).toBeUndefined();
  advance(VERIFIED_TOKEN_TTL_MS);
  expect(await store.authenticate(untold.secret)).toBeUndefined();
});

it('forget() without an id drops every verified token (after the event channel was down)', async () => {
  const { index, store } = setup();
  const { token, secret } = await store.create('ci', 'read');
  expect(await store.authenticate(secret)).toBeDefined();
  index.revokeBehind(token.id);
  store.forget();
  expect(await store.authenticate(secret)).toBeUndefined();
});

it('an expiry is checked at every request, not once per TTL', async () => {
  const { store, advance } = setup();
  const { secret } = await store.create('short', 'read', 1);
  expect(await store.authenticate(secret)).toBeDefined();
  advance(1000); // expiresAt is now: no longer active
  expect(await store.authenticate(secret)).toBeUndefined();
});

it('a read in flight while the token is revoked is not kept', async () => {
  const { index, store } = setup();
  const { token, secret } = await store.create('ci', 'write');
  const release = index.hold();
  const inFlight = store.authenticate(secret); // read the row while it was active
  await store.revoke(token.id);
  release();
  expect(await inFlight).toBeDefined(); // it started before the revocation
  expect(await store.authenticate(secret)).toBeUndefined();
});

it('unknown secrets are never kept: each is read from the index', async () => {
  const { index, store } = setup();
  for (let i = 0; i < 3; i++) expect(await store.authenticate('tsr_nope')).toBeUndefined();
  expect(index.reads()).toBe(3);
});
