// The baseline of `npm run bench`: the least a replicating proxy must do on the same datanodes,
// on plain node:http. No GraphQL, no SQLite index (a fragment's datanodes follow from its id, so
// what it acknowledged is found again after a restart without any record), no verification on
// read. A fragment PUT is hashed once while it arrives, then written to R datanodes in parallel
// over keep-alive; a read GETs the fragment from a datanode and streams it on.
//
//   PUT  /fragments/{id}   raw body -> 201 {"sha256","replicas"}
//   GET  /fragments/{id}   the bytes, streamed from the first datanode holding it
//   DELETE /fragments/{id} the fragment's files on its R datanodes (the bench frees its disk with it)
//   POST /objects/{name}   JSON [{"id","size","urls"?}]: names a list of fragments (in order)
//   GET  /objects/{name}   the fragments in order, fetched READ_AHEAD ahead (as GET /images does)
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { Command } from 'commander';
import { loadClusterSecret } from '../src/shared/cluster-secret.ts';
import { CONTENT_SHA256_HEADER, bearer, paths } from '../src/shared/datanode-api.ts';
import { writable } from '../src/http/image-route.ts';

const READ_AHEAD = 3;

const program = new Command('bare-proxy')
  .requiredOption('--port <port>', 'port to listen on', (v) => Number(v))
  .option('--host <host>', 'address to bind', '127.0.0.1')
  .option('--secret-file <file>', 'the cluster secret')
  .option('--replicas <n>', 'replicas per fragment', (v) => Number(v), 2)
  .option(
    '--datanode <url>',
    'a datanode (repeatable)',
    (v: string, prev: string[] = []) => [...prev, v.replace(/\/+$/, '')],
    [] as string[],
  )
  .parse();
const opts = program.opts<{ port: number; host: string; secretFile?: string; replicas: number; datanode: string[] }>();
const secret = loadClusterSecret(opts.secretFile);
const auth = secret ? { authorization: bearer(secret) } : {};
const datanodes = opts.datanode.map((u) => new URL(u));
if (datanodes.length < opts.replicas) throw new Error(`need at least ${opts.replicas} --datanode`);

const agent = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16 });
const objects = new Map<string, { id: string; size: number; urls: URL[] }[]>();

/**
 * The datanodes of fragment `id`: R consecutive ones from a start its FNV-1a hash picks. Derived,
 * not remembered: a proxy that kept them in memory only would lose every object it acknowledged
 * when it restarts (a map did that here).
 */
function placementOf(id: string): URL[] {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  const start = (h >>> 0) % datanodes.length;
  return Array.from({ length: opts.replicas }, (_, i) => datanodes[(start + i) % datanodes.length]);
}

function toDatanode(node: URL, method: string, path: string, headers: http.OutgoingHttpHeaders, body?: Buffer[]): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname: node.hostname, port: node.port, method, path, agent, headers: { ...auth, ...headers } }, resolve);
    req.once('error', reject);
    // One corked batch per fragment, as the coordinator writes replicas: its chunks leave in one writev.
    req.cork();
    if (body) for (const chunk of body) req.write(chunk);
    req.end();
    process.nextTick(() => req.uncork());
  });
}

async function readAll(res: IncomingMessage): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return chunks;
}

async function putFragment(id: string, req: IncomingMessage, res: ServerResponse) {
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    hash.update(c as Buffer);
    chunks.push(c as Buffer);
    size += (c as Buffer).length;
  }
  const sha256 = hash.digest('hex');
  const targets = placementOf(id);
  const answers = await Promise.all(
    targets.map(async (node) => {
      const r = await toDatanode(
        node,
        'PUT',
        paths.fragment(id),
        { 'content-length': size, 'content-type': 'application/octet-stream', [CONTENT_SHA256_HEADER]: sha256 },
        chunks,
      );
      r.resume();
      return r.statusCode;
    }),
  );
  if (answers.some((s) => s !== 201)) return send(res, 502, { error: `datanodes answered ${answers.join(', ')}` });
  send(res, 201, { sha256, replicas: targets.map(String) });
}

async function getFragment(id: string, res: ServerResponse) {
  const r = await toDatanode(placementOf(id)[0], 'GET', paths.fragment(id), {});
  res.writeHead(r.statusCode ?? 502, {
    'content-type': 'application/octet-stream',
    ...(r.headers['content-length'] ? { 'content-length': r.headers['content-length'] } : {}),
  });
  r.pipe(res);
}

async function deleteFragment(id: string, res: ServerResponse) {
  const answers = await Promise.all(
    placementOf(id).map(async (node) => {
      const r = await toDatanode(node, 'DELETE', paths.fragment(id), {});
      r.resume();
      return r.statusCode;
    }),
  );
  if (answers.some((s) => s !== 204)) return send(res, 502, { error: `datanodes answered ${answers.join(', ')}` });
  res.writeHead(204).end();
}

async function fetchWhole(fragment: { id: string; urls: URL[] }): Promise<Buffer[]> {
  const r = await toDatanode(fragment.urls[0], 'GET', paths.fragment(fragment.id), {});
  const chunks = await readAll(r);
  if (r.statusCode !== 200) throw new Error(`datanode answered ${r.statusCode} for ${fragment.id}`);
  return chunks;
}

async function getObject(name: string, res: ServerResponse) {
  const fragments = objects.get(name);
  if (!fragments) return send(res, 404, { error: 'unknown object' });
  const pending: Promise<Buffer[]>[] = [];
  let next = 0;
  const fetchMore = () => {
    while (next < fragments.length && pending.length <= READ_AHEAD) {
      const p = fetchWhole(fragments[next++]);
      p.catch(() => {});
      pending.push(p);
    }
  };
  fetchMore();
  const first = await pending[0];
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': fragments.reduce((n, f) => n + f.size, 0) });
  for (let i = 0; i < fragments.length; i++) {
    const chunks = i === 0 ? first : await pending[0];
    void pending.shift(); // its rejection is already handled where it was made
    fetchMore();
    for (const c of chunks) {
      if (!res.write(c)) await writable(res);
      if (res.destroyed) return;
    }
  }
  res.end();
}

async function postObject(name: string, req: IncomingMessage, res: ServerResponse) {
  const list = JSON.parse(Buffer.concat(await readAll(req)).toString('utf8')) as { id: string; size: number; urls?: string[] }[];
  objects.set(
    name,
    list.map((f) => ({ id: f.id, size: f.size, urls: f.urls ? f.urls.map((u) => new URL(u)) : placementOf(f.id) })),
  );
  send(res, 201, { fragments: list.length });
}

function send(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  const [, kind, rawKey] = /^\/(fragments|objects)\/([^/?]+)$/.exec(url) ?? [];
  const key = rawKey ? decodeURIComponent(rawKey) : '';
  let work: Promise<void> | void;
  if (kind === 'fragments' && req.method === 'PUT') work = putFragment(key, req, res);
  else if (kind === 'fragments' && req.method === 'GET') work = getFragment(key, res);
  else if (kind === 'fragments' && req.method === 'DELETE') work = deleteFragment(key, res);
  else if (kind === 'objects' && req.method === 'POST') work = postObject(key, req, res);
  else if (kind === 'objects' && req.method === 'GET') work = getObject(key, res);
  else if (url === '/healthz') work = send(res, 200, { status: 'ok' });
  else work = send(res, 404, { error: 'no route' });
  Promise.resolve(work).catch((err: Error) => {
    if (!res.headersSent) send(res, 502, { error: err.message });
    else res.destroy();
  });
});
server.keepAliveTimeout = 65_000;

const shutdown = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
  agent.destroy();
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
// The bench dies with its parent: no orphan is left even when the parent is SIGKILLed.
process.on('disconnect', shutdown);

server.listen(opts.port, opts.host, () => {
  process.stdout.write(JSON.stringify({ event: 'listening', url: `http://${opts.host}:${opts.port}` }) + '\n');
});
