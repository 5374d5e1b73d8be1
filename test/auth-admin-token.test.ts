// The admin token file and the CLI's token commands, with real processes: the coordinator
// writes <data-dir>/admin.token (0600) on its first start and says where; a restart keeps it;
// an index that lost its tokens (rebuilt, disk lost) gets a new one written over the stale
// file. The tessera CLI finds it in ./data (or $TESSERA_DATA_DIR) and runs token create/ls/revoke.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdtemp, mkdir, rm, stat, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, stopAllCli } from './support/cli-process.ts';
import { startCoordinatorProcess, stopAllCoordinatorProcesses, type CoordinatorProcess } from './support/coordinator-process.ts';
import { readAdminToken, rawFetch } from './support/tokens.ts';
import { dropMetadataFor } from './support/test-metadata.ts';

let dir: string;
let coordinator: CoordinatorProcess | undefined;

const status = async (url: string, token: string) =>
  (
    await rawFetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ cluster { imageCount } }' }),
    })
  ).status;

const tessera = runCli;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-admin-token-'));
});
afterAll(async () => {
  await stopAllCli();
  await stopAllCoordinatorProcesses();
  await rm(dir, { recursive: true, force: true });
});

it('the first start writes <data-dir>/admin.token (0600) and logs where; a restart keeps it; a lost index gets a new one', async () => {
  const dataDir = join(dir, 'coordinator');
  coordinator = await startCoordinatorProcess({ dataDir });
  const file = join(dataDir, 'admin.token');
  const first = readAdminToken(dataDir);
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  expect(coordinator.stderr()).toContain(file);
  expect(await status(coordinator.url, first)).toBe(200);
  await coordinator.stop();

  coordinator = await startCoordinatorProcess({ dataDir });
  expect(readAdminToken(dataDir)).toBe(first);
  expect(await status(coordinator.url, first)).toBe(200);
  await coordinator.stop();

  // The index is lost (and rebuilt without tokens): the stale file is replaced by a working token.
  // On PostgreSQL the index is its database: dropped, the next start gets a new, empty one.
  for (const f of ['index.sqlite', 'index.sqlite-wal', 'index.sqlite-shm']) await rm(join(dataDir, f), { force: true });
  await dropMetadataFor(dataDir);
  coordinator = await startCoordinatorProcess({ dataDir });
  const second = readAdminToken(dataDir);
  expect(second).not.toBe(first);
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  expect(await status(coordinator.url, second)).toBe(200);
  expect(await status(coordinator.url, first)).toBe(401);
}, 90_000);

it('tessera finds the admin token in ./data, creates, lists and revokes tokens; --token and TESSERA_TOKEN override', async () => {
  const url = coordinator!.url;
  const cwd = join(dir, 'operator');
  await mkdir(join(cwd, 'data'), { recursive: true });
  await copyFile(join(dir, 'coordinator', 'admin.token'), join(cwd, 'data', 'admin.token'));

  const created = await tessera(['--url', url, 'token', 'create', '--role', 'write', '--name', 'ci', '--expires-in', '30d', '--json'], cwd);
  expect(created.stderr).toBe('');
  expect(created.code).toBe(0);
  const { secret, token } = JSON.parse(created.stdout);
  expect(token).toMatchObject({ name: 'ci', role: 'write', active: true });
  expect(Date.parse(token.expiresAt) - Date.now()).toBeGreaterThan(29 * 86400_000);
  expect(await status(url, secret)).toBe(200);

  // Elsewhere, TESSERA_DATA_DIR points at the data dir.
  const listed = await tessera(['--url', url, 'token', 'ls', '--json'], dir, { TESSERA_DATA_DIR: join(dir, 'coordinator') });
  expect(listed.code).toBe(0);
  expect(JSON.parse(listed.stdout).map((t: { id: string }) => t.id)).toContain(token.id);

  // The write token itself may not administer tokens: FORBIDDEN, exit 1.
  const asWriter = await tessera(['--url', url, '--token', secret, 'token', 'ls'], cwd);
  expect(asWriter.code).toBe(1);
  expect(asWriter.stderr).toMatch(/error FORBIDDEN/);
  const viaEnv = await tessera(['--url', url, 'token', 'ls'], cwd, { TESSERA_TOKEN: secret });
  expect(viaEnv.stderr).toMatch(/error FORBIDDEN/);

  const revoked = await tessera(['--url', url, 'token', 'revoke', token.id], cwd);
  expect(revoked.code).toBe(0);
  expect(revoked.stdout).toContain(`revoked ${token.id}`);
  expect(await status(url, secret)).toBe(401);

  // With no token anywhere the CLI gets UNAUTHENTICATED.
  const nothing = await tessera(['--url', url, 'ls'], dir);
  expect(nothing.code).toBe(1);
  expect(nothing.stderr).toMatch(/error UNAUTHENTICATED/);
}, 90_000);
