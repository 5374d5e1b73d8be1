// A real nginx (Debian's package) for tests, running docs/nginx.conf itself: the upstream servers
// and the listen address replaced by the test's, every path nginx writes (pid, logs, temp files)
// moved into a temp prefix, and run as a child in the foreground (daemon off) so it is stopped
// with the test and leaves nothing behind.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildGroup, REPO_ROOT, spawnChild, type Child } from '../../src/launcher/child-process.ts';

const group = new ChildGroup();
const running = new Set<Nginx>();
const PATH_WITH_SBIN = `${process.env.PATH ?? ''}:/usr/sbin:/sbin:/usr/local/sbin`;

/** nginx's path, or why there is none (the reason goes into the skipped test's name). */
export function findNginx(): { bin: string; reason?: undefined } | { bin?: undefined; reason: string } {
  const found = spawnSync('sh', ['-c', 'command -v nginx'], { env: { ...process.env, PATH: PATH_WITH_SBIN }, encoding: 'utf8' });
  const bin = found.stdout.trim();
  if (found.status !== 0 || !bin) return { reason: 'nginx is not installed (apt-get install nginx)' };
  const version = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  if (version.status !== 0) return { reason: `${bin} -v failed: ${version.stderr.trim()}` };
  return { bin };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** docs/nginx.conf with the test's upstreams, address and temp paths. */
export async function testConfig(upstreams: string[], port: number, prefix: string): Promise<string> {
  const docs = await readFile(join(REPO_ROOT, 'docs', 'nginx.conf'), 'utf8');
  const servers = /^(\s*)server 10\.0\.0\.\d+:4000( [^;]*);\n/gm;
  const [first] = [...docs.matchAll(servers)];
  if (!first) throw new Error('docs/nginx.conf: no "server 10.0.0.x:4000 ...;" lines in the upstream block');
  const [, indent, params] = first;
  const upstreamLines = upstreams.map((u) => `${indent}server ${new URL(u).host}${params};\n`).join('');
  let conf = docs.replace(servers, (line) => (line === first[0] ? upstreamLines : ''));
  if (!/^\s*listen 80;$/m.test(conf)) throw new Error('docs/nginx.conf: no "listen 80;" line');
  conf = conf.replace(/^(\s*)listen 80;$/m, `$1listen 127.0.0.1:${port};`);
  // Everything nginx writes goes under the prefix (Debian compiles in /var/lib/nginx and /var/log/nginx).
  const paths = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((kind) => `    ${kind}_temp_path ${join(prefix, 'temp', kind)};`)
    .join('\n');
  conf = conf.replace(/^http \{$/m, `http {\n${paths}\n    access_log ${join(prefix, 'access.log')};`);
  return conf.replace(/^worker_processes auto;$/m, 'worker_processes 1;');
}

export interface Nginx {
  url: string;
  child: Child;
  /** Its error log so far (for failure messages). */
  errorLog(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts nginx in front of `upstreams` on a free port; resolves once it accepts connections. */
export async function startNginx(bin: string, upstreams: string[]): Promise<Nginx> {
  const prefix = await mkdtemp(join(tmpdir(), 'tessera-nginx-'));
  await mkdir(join(prefix, 'temp'));
  const port = await freePort();
  const confFile = join(prefix, 'nginx.conf');
  await writeFile(confFile, await testConfig(upstreams, port, prefix));
  const globals = [`daemon off;`, `pid ${join(prefix, 'nginx.pid')};`];
  // As root, workers would switch to nobody, who may not write into our temp prefix.
  if (process.getuid?.() === 0) globals.push('user root;');
  const errorLog = join(prefix, 'error.log');
  const child = spawnChild({
    name: 'nginx',
    command: bin,
    args: ['-p', prefix, '-c', confFile, '-e', errorLog, '-g', globals.join(' ')],
    group,
    stopSignal: 'SIGTERM',
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.hasExited()) {
      const log = await readFile(errorLog, 'utf8').catch(() => '');
      await rm(prefix, { recursive: true, force: true });
      throw new Error(`nginx exited at start: ${child.output()} ${log}`);
    }
    const up = await fetch(`${url}/health-of-nginx-itself`).then(
      () => true,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      await child.stop();
      throw new Error(`nginx did not accept connections on ${url} within 15 s: ${child.output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const nginx: Nginx = {
    url,
    child,
    errorLog: () => readFile(errorLog, 'utf8').catch(() => ''),
    async stop() {
      running.delete(nginx);
      await child.stop();
      await rm(prefix, { recursive: true, force: true });
    },
  };
  running.add(nginx);
  return nginx;
}

/** Stops every nginx still running and removes its prefix (afterAll). */
export async function stopAllNginx(): Promise<void> {
  await Promise.all([...running].map((n) => n.stop()));
  await group.stopAll();
}
