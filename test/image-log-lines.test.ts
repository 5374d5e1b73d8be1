// "image stored", "image deleted" and "upload expired" log lines name the image, in the JSON a
// coordinator writes and in the line `npm start` shows (pino's own `name` key is the logger's,
// so an image name under that key was dropped from the terminal and duplicated in the JSON).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { humanLogLine } from '../src/launcher/log-lines.ts';
import { makeConfig } from '../src/config.ts';
import { startCoordinator, type RunningCoordinator } from '../src/start-coordinator.ts';
import { startDatanode, TEST_SECRET, type TestDatanode } from './support/cluster.ts';
import { createGraphQLClient } from './support/graphql.ts';
import { readAdminToken, rememberToken } from './support/tokens.ts';

const lines: string[] = [];
let dir: string;
let nodes: TestDatanode[];
let coordinator: RunningCoordinator;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-log-lines-'));
  nodes = await Promise.all([0, 1].map((i) => startDatanode(join(dir, `datanode-${i}`), undefined, i)));
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const log = pino({ name: 'coordinator', level: 'info' }, sink);
  const config = makeConfig({
    dataDir: join(dir, 'coordinator'),
    port: 0,
    secret: TEST_SECRET,
    fragmentSize: 64 * 1024,
    healthIntervalMs: 100,
    datanodes: nodes.map((n) => n.url),
  });
  coordinator = await startCoordinator(config, log);
  rememberToken(coordinator.url, readAdminToken(config.dataDir)); // the helpers send it
});
afterAll(async () => {
  await coordinator?.stop();
  await Promise.all((nodes ?? []).map((n) => n.close()));
  await rm(dir, { recursive: true, force: true });
});

it('names the image in "image stored" and "image deleted", in JSON and in the npm start line', async () => {
  const gql = createGraphQLClient(() => coordinator.url);
  const name = 'cats/tabby log.png';
  const form = await gql.multipart(
    'mutation($n: String!, $f: File!) { uploadImage(name: $n, file: $f) { name } }',
    { n: name, f: null },
    { 'variables.f': { data: new Uint8Array(100) } },
  );
  expect(form.errors).toBeUndefined();
  await gql.ok('mutation($n: String!) { deleteImage(name: $n) }', { n: name });

  for (const message of ['image stored', 'image deleted']) {
    const line = lines.find((l) => JSON.parse(l).msg === message);
    expect(line, message).toBeDefined();
    expect(JSON.parse(line!).image).toBe(name);
    expect(JSON.parse(line!).name).toBe('coordinator'); // the logger's name stays its own
    expect(humanLogLine('coordinator', line!)).toContain(`image=${name}`);
  }
});
