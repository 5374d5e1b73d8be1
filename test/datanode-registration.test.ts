// A datanode started with --coordinator registers itself (registerDatanode, with the secret),
// keeps retrying while the coordinator is unreachable, and re-registers periodically; given several
// coordinators, with the first that answers, moving to the next when it stops answering.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { runDatanodeUntilExit, startDatanodeProcess, stopAllDatanodeProcesses } from './support/datanode-process.ts';
import { until } from './support/poll.ts';

const SECRET = 'registration-secret';
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await stopAllDatanodeProcesses();
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Registration {
  path: string;
  authorization: string | undefined;
  query: string;
  url: string;
}

/** A stand-in coordinator that records every registerDatanode call. */
async function fakeCoordinator(port = 0, answer: () => object = () => ({ data: { registerDatanode: { id: 'dn-1' } } })) {
  const calls: Registration[] = [];
  const server: Server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8').on('data', (s: string) => (text += s));
    req.on('end', () => {
      const body = JSON.parse(text) as { query: string; variables: { url: string } };
      calls.push({ path: req.url ?? '', authorization: req.headers.authorization, query: body.query, url: body.variables.url });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer()));
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  return { calls, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-dn-reg-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

it('registers with its own URL and the secret, then again periodically', async () => {
  const coordinator = await fakeCoordinator();
  const node = await startDatanodeProcess({
    dataDir: await tempDir(),
    secret: SECRET,
    coordinator: coordinator.url,
    extraArgs: ['--register-interval-ms', '150'],
  });
  await until(() => coordinator.calls.length >= 3, 'three registrations', 8_000);
  for (const call of coordinator.calls) {
    expect(call).toEqual({
      path: '/graphql',
      authorization: `Bearer ${SECRET}`,
      query: 'mutation($url:String!){registerDatanode(url:$url){id}}',
      url: node.url,
    });
  }
});

it('registers --public-url when given', async () => {
  const coordinator = await fakeCoordinator();
  await startDatanodeProcess({
    dataDir: await tempDir(),
    secret: SECRET,
    coordinator: coordinator.url,
    extraArgs: ['--public-url', 'http://dn7.example:9007'],
  });
  await until(() => coordinator.calls.length >= 1, 'a registration', 8_000);
  expect(coordinator.calls[0].url).toBe('http://dn7.example:9007');
});

it('keeps trying while the coordinator is unreachable and registers once it appears', async () => {
  // Reserve a free port, release it, and bring the coordinator up there only later.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));

  const node = await startDatanodeProcess({
    dataDir: await tempDir(),
    secret: SECRET,
    coordinator: `http://127.0.0.1:${port}`,
  });
  await new Promise((r) => setTimeout(r, 500));
  expect(node.process.exitCode).toBeNull(); // an absent coordinator is no reason to stop

  const coordinator = await fakeCoordinator(port);
  await until(() => coordinator.calls.length >= 1, 'a registration', 6_000);
  expect(coordinator.calls[0].url).toBe(node.url);
});

it('keeps retrying when the coordinator rejects the registration', async () => {
  const coordinator = await fakeCoordinator(0, () => ({
    errors: [{ message: 'wrong secret', extensions: { code: 'UNAUTHENTICATED' } }],
    data: null,
  }));
  const node = await startDatanodeProcess({ dataDir: await tempDir(), secret: SECRET, coordinator: coordinator.url });
  await until(() => coordinator.calls.length >= 2, 'two registrations', 8_000);
  await until(() => node.stderr().includes('UNAUTHENTICATED'), 'UNAUTHENTICATED in its log', 8_000);
  expect(node.process.exitCode).toBeNull();
});

it('given several coordinators, registers with the first that answers and moves on when it stops answering', async () => {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const refusing = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise<void>((r) => probe.close(() => r()));
  let firstAnswers = true;
  const first = await fakeCoordinator(0, () =>
    firstAnswers ? { data: { registerDatanode: { id: 'dn-1' } } } : { errors: [{ message: 'gone', extensions: { code: 'SERVER_BUSY' } }] },
  );
  const second = await fakeCoordinator();

  const node = await startDatanodeProcess({
    dataDir: await tempDir(),
    secret: SECRET,
    coordinator: `${refusing},${first.url}/,${second.url}`,
    extraArgs: ['--register-interval-ms', '150'],
  });
  await until(() => first.calls.length >= 2, 'two registrations with the first coordinator that answers', 8_000);
  expect(second.calls).toEqual([]);
  expect(first.calls[0]).toMatchObject({ path: '/graphql', url: node.url, authorization: `Bearer ${SECRET}` });

  firstAnswers = false;
  await until(() => second.calls.length >= 2, 'registrations with the next coordinator', 8_000);
  expect(second.calls[0]).toMatchObject({ path: '/graphql', url: node.url });
});

it('refuses a malformed --coordinator list before serving', async () => {
  for (const [list, message] of [
    ['http://127.0.0.1:1,,http://127.0.0.1:2', /--coordinator has an empty entry/],
    ['http://127.0.0.1:1,ftp://x', /--coordinator must be http\(s\):\/\/… URLs, separated by commas \(got "ftp:\/\/x"\)/],
    ['http://127.0.0.1:1,http://127.0.0.1:1/', /--coordinator lists http:\/\/127\.0\.0\.1:1 twice/],
  ] as const) {
    const exit = await runDatanodeUntilExit({ dataDir: await tempDir(), secret: SECRET, coordinator: list });
    expect(exit.code).not.toBe(0);
    expect(exit.stderr).toMatch(message);
    expect(exit.stdout).toBe('');
  }
});
