// The `tessera` command as a user runs it (node bin/tessera.js, real processes) against a real
// in-process cluster: upload, ls, stat, download, rm, nodes with --json that parses, errors
// with their code and exit status, help for every command, and watch printing others' events.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startCli, stopAllCli } from './support/cli-process.ts';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { untilValue } from './support/poll.ts';
import { createTesseraClient } from '../src/client/index.ts';
import { runCli } from '../src/client/cli-program.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let cluster: TestCluster;
let dir: string;

/** `tessera` in the test dir with only this cluster configured. */
const start = (args: string[], env: Record<string, string> = {}) =>
  startCli(args, dir, { TESSERA_URL: cluster.url, TESSERA_TOKEN: cluster.adminToken, TESSERA_STATE_DIR: join(dir, 'state'), ...env });

const tessera = (...args: string[]) => start(args).done;

beforeAll(async () => {
  [cluster, dir] = await Promise.all([startCluster(), mkdtemp(join(tmpdir(), 'tessera-cli-'))]);
  // The in-process runs below resume from here too, never from the user's ~/.cache.
  process.env.TESSERA_STATE_DIR = join(dir, 'state');
});
afterAll(async () => {
  await stopAllCli();
  await cluster?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('tessera', () => {
  const cat = randomBytes(5 * 64 * 1024 + 17);
  const dog = randomBytes(300);

  it('upload --json uploads several files and describes each', async () => {
    await writeFile(join(dir, 'cat.png'), cat);
    await writeFile(join(dir, 'dog.jpg'), dog);
    const { code, stdout, stderr } = await tessera('--json', 'upload', 'cat.png', 'dog.jpg');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const results = JSON.parse(stdout);
    expect(results).toEqual([
      expect.objectContaining({
        name: 'cat.png',
        size: cat.length,
        sha256: sha256(cat),
        contentType: 'image/png',
        resumed: false,
        fragmentCount: 6,
        sentFragments: 6,
      }),
      expect.objectContaining({ name: 'dog.jpg', size: 300, sha256: sha256(dog), contentType: 'image/jpeg' }),
    ]);
  });

  it('upload --name and --content-type, human output', async () => {
    const { code, stdout } = await tessera(
      'upload',
      '--name',
      'pets/cat copy',
      '--content-type',
      'image/x-test',
      '--parallel',
      '2',
      'cat.png',
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(/^uploaded pets\/cat copy \(.*\) sha256 [0-9a-f]{64}\n$/);
  });

  it('ls --json parses and lists by name', async () => {
    const { code, stdout } = await tessera('ls', '--json');
    expect(code).toBe(0);
    const page = JSON.parse(stdout);
    expect(page.images.map((i: { name: string }) => i.name)).toEqual(['cat.png', 'dog.jpg', 'pets/cat copy']);
    expect(page).toMatchObject({ totalCount: 3, pageInfo: { hasNextPage: false } });
    expect(page.images[2]).toMatchObject({ contentType: 'image/x-test', size: cat.length, sha256: sha256(cat) });
  });

  it('stat --json shows fragments and their replicas', async () => {
    const { code, stdout } = await tessera('stat', 'cat.png', '--json');
    expect(code).toBe(0);
    const image = JSON.parse(stdout);
    expect(image).toMatchObject({ name: 'cat.png', sha256: sha256(cat), fragmentCount: 6 });
    expect(image.fragments).toHaveLength(6);
    for (const f of image.fragments) expect(f.replicas).toHaveLength(2);
  });

  it('download -o writes a byte-identical file', async () => {
    const { code, stdout } = await tessera('--json', 'download', 'pets/cat copy', '-o', 'copy.png');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ name: 'pets/cat copy', sha256: sha256(cat), size: cat.length, path: join(dir, 'copy.png') });
    expect((await readFile(join(dir, 'copy.png'))).equals(cat)).toBe(true);
  });

  it('a missing image exits 1, stderr names IMAGE_NOT_FOUND, and no file is written', async () => {
    const before = await readdir(dir);
    const { code, stderr, stdout } = await tessera('download', 'nope.png', '-o', 'nope.png');
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error IMAGE_NOT_FOUND: .*nope\.png/m);
    expect(stdout).toBe('');
    expect(await readdir(dir)).toEqual(before);
  });

  it('rm deletes each name; a missing one is reported and makes the status 1', async () => {
    const { code, stdout, stderr } = await tessera('--json', 'rm', 'dog.jpg', 'nope.png', 'pets/cat copy');
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error IMAGE_NOT_FOUND: .*nope\.png/m);
    expect(JSON.parse(stdout)).toEqual([
      { name: 'dog.jpg', deleted: true },
      { name: 'nope.png', deleted: false },
      { name: 'pets/cat copy', deleted: true },
    ]);
    expect(
      (await cluster.gql(`{ images { edges { node { name } } } }`)).images.edges.map((e: { node: { name: string } }) => e.node.name),
    ).toEqual(['cat.png']);
  });

  it('nodes --json lists the datanodes', async () => {
    const { code, stdout } = await tessera('nodes', '--json');
    expect(code).toBe(0);
    const nodes = JSON.parse(stdout);
    expect(nodes).toHaveLength(3);
    for (const n of nodes)
      expect(n).toMatchObject({
        id: expect.any(String),
        url: expect.stringMatching(/^http:/),
        status: 'UP',
        fragmentCount: expect.any(Number),
        storedBytes: expect.any(Number),
      });
  });

  it('a usage error exits 2', async () => {
    const { code, stderr } = await tessera('upload', '--parallel', '0', 'cat.png');
    expect(code).toBe(2);
    expect(stderr).toMatch(/^error USAGE: .*--parallel/);
  });

  it('watch --json prints the ImageStored event of an upload made by someone else', async () => {
    const watch = start(['watch', '--json']);
    const other = createTesseraClient({ url: cluster.url, stateDir: false });
    try {
      await untilValue(() => watch.output().stderr.includes('watching'), 'watch to say it is watching', {
        timeoutMs: 20_000,
        unless: watch.done,
      });
      // graphql-ws does not acknowledge a subscription; an upload a moment too early is missed, so
      // keep uploading until one shows (the first one does, in practice).
      let line: string | undefined;
      for (let i = 0; !line; i++) {
        const name = `watched-${i}`;
        await other.upload(Readable.from([Buffer.from('x'.repeat(i + 1))]), { name, size: i + 1 });
        line = await untilValue(
          () =>
            watch
              .output()
              .stdout.split('\n')
              .find((l) => l.includes(`"${name}"`)),
          `watch to print ${name}`,
          { timeoutMs: 3000, unless: watch.done },
        ).catch(() => undefined);
      }
      const event = JSON.parse(line);
      expect(event).toMatchObject({
        __typename: 'ImageStored',
        name: expect.stringMatching(/^watched-/),
        size: expect.any(Number),
        at: expect.any(String),
        message: expect.any(String),
      });
      // Every line on stdout is one JSON object.
      for (const l of watch.output().stdout.trim().split('\n')) expect(() => JSON.parse(l)).not.toThrow();
    } finally {
      other.close();
      watch.child.kill('SIGINT');
    }
    expect((await watch.done).code).toBe(0);
  });
});

describe('human output (in-process runCli against the same cluster)', () => {
  async function run(...args: string[]) {
    let stdout = '';
    let stderr = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((c) => ((stdout += String(c)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((stderr += String(c)), true));
    try {
      const code = await runCli(['node', 'tessera', '--url', cluster.url, ...args]);
      return { code, stdout, stderr };
    } finally {
      vi.restoreAllMocks();
    }
  }

  it('ls prints a table and says how to get the next page', async () => {
    for (const name of ['h/1', 'h/2', 'h/3']) expect((await run('upload', '--name', name, join(dir, 'cat.png'))).code).toBe(0);
    const { code, stdout, stderr } = await run('ls', '--prefix', 'h/', '--first', '2');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^NAME +SIZE +TYPE +CREATED\nh\/1 .*\nh\/2 /);
    expect(stderr).toMatch(/2 of 3 shown; more with --after \S+/);
  });

  it('stat prints the fields and one row per fragment with its replicas', async () => {
    const { stdout } = await run('stat', 'h/1');
    expect(stdout).toMatch(/^sha256 +[0-9a-f]{64}$/m);
    expect(stdout).toMatch(/^ *# +SIZE +SHA256 +REPLICAS$/m);
    expect(stdout.match(/\(UP\), \S+ \(UP\)$/gm)).toHaveLength(6);
  });

  it('nodes prints the table columns', async () => {
    const { stdout } = await run('nodes');
    expect(stdout).toMatch(/^ID +URL +STATUS +CPU +MEMORY +DISK +FRAGMENTS +STORED\n/);
    expect(stdout.trim().split('\n')).toHaveLength(4);
  });

  it('an unreachable coordinator is error NETWORK_ERROR with status 1', async () => {
    const { code, stderr } = await runCliAt('http://127.0.0.1:1');
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error NETWORK_ERROR: /);
  });

  async function runCliAt(url: string) {
    let stderr = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((stderr += String(c)), true));
    try {
      return { code: await runCli(['node', 'tessera', '--url', url, 'nodes']), stderr };
    } finally {
      vi.restoreAllMocks();
    }
  }
});
