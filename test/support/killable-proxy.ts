// A small HTTP proxy standing in for one coordinator of several, in front of a real one: it can
// "die" the way a killed process does (every open connection reset, new ones refused), cut a
// download's body short, and logs what went through it, so client failover is tested without
// a second coordinator process.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';

export interface ProxiedRequest {
  method: string;
  path: string;
  /** The GraphQL operation's name (JSON requests only), e.g. "Upload". */
  operation?: string;
  /** A fragment upload: PUT /uploads/{id}/fragments/{index}, or a multipart uploadFragment. */
  fragment: boolean;
  range?: string;
}

export interface KillableProxy {
  url: string;
  log: ProxiedRequest[];
  /** Resolves once `n` fragment requests have been answered. */
  fragmentsAnswered(n: number): Promise<void>;
  /** GET bodies are cut (the socket destroyed) after this many bytes. */
  cutBodiesAfter?: number;
  /** Fragment requests are answered 503 METADATA_UNAVAILABLE, as by a coordinator cut from its database. */
  databaseCut?: boolean;
  /** Fragment requests are answered 503 CLUSTER_NOT_READY, as by a coordinator that does not know the cluster id yet. */
  clusterNotReady?: boolean;
  /** Resets every open connection and refuses new ones, like a process killed with -9. */
  kill(): void;
  close(): Promise<void>;
}

const operationOf = (body: string) => /^\s*(?:query|mutation|subscription)\s+(\w+)/.exec(JSON.parse(body).query ?? '')?.[1];

export async function startKillableProxy(target: string): Promise<KillableProxy> {
  const sockets = new Set<Socket>();
  const upstream = new URL(target);
  let answered = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  const onAnswered = () => {
    answered++;
    for (const w of waiters.filter((x) => answered >= x.n)) w.resolve();
  };

  function forward(req: IncomingMessage, res: ServerResponse, entry: ProxiedRequest, body?: Buffer) {
    const up = http.request(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        let sent = 0;
        answer.on('data', (chunk: Buffer) => {
          sent += chunk.length;
          if (req.method === 'GET' && proxy.cutBodiesAfter !== undefined && sent > proxy.cutBodiesAfter) {
            answer.destroy();
            res.socket?.destroy(); // the download breaks off mid-body
            return;
          }
          res.write(chunk);
        });
        answer.on('end', () => {
          res.end();
          if (entry.fragment) onAnswered();
        });
      },
    );
    up.on('error', () => res.socket?.destroy());
    if (body) up.end(body);
    else req.pipe(up);
  }

  const server = http.createServer((req, res) => {
    const type = req.headers['content-type'] ?? '';
    const entry: ProxiedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      fragment: type.startsWith('multipart/') || (req.method === 'PUT' && (req.url ?? '').startsWith('/uploads/')),
      range: req.headers.range,
    };
    proxy.log.push(entry);
    if (proxy.databaseCut && entry.fragment) return answerUnavailable(req, res, DATABASE_CUT);
    if (proxy.clusterNotReady && entry.fragment) return answerUnavailable(req, res, CLUSTER_NOT_READY);
    if (!type.startsWith('application/json')) return forward(req, res, entry);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      try {
        entry.operation = operationOf(body.toString('utf8'));
      } catch {
        // not GraphQL JSON: forwarded as it is
      }
      forward(req, res, entry, body);
    });
  });
  // WebSocket upgrades (subscriptions): the request head as it came, then bytes both ways.
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    proxy.log.push({ method: req.method ?? '', path: req.url ?? '', fragment: false });
    const up = connect(Number(upstream.port), upstream.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      up.write(head);
      up.pipe(socket).pipe(up);
    });
    sockets.add(up);
    up.on('close', () => {
      sockets.delete(up);
      socket.destroy();
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const proxy: KillableProxy = {
    url,
    log: [],
    fragmentsAnswered: (n) => new Promise<void>((resolve) => (answered >= n ? resolve() : waiters.push({ n, resolve }))),
    kill() {
      server.close();
      for (const s of sockets) s.resetAndDestroy();
    },
    async close() {
      proxy.kill();
      await new Promise<void>((r) => (server.listening ? server.close(() => r()) : r()));
    },
  };
  return proxy;
}

const DATABASE_CUT = { code: 'METADATA_UNAVAILABLE', message: 'The metadata database did not answer: cut (test proxy).' };
const CLUSTER_NOT_READY = { code: 'CLUSTER_NOT_READY', message: 'This coordinator does not know the cluster id yet (test proxy).' };

/** A coordinator's 503 answer `error`: GraphQL-shaped on /graphql, {code, message} elsewhere. */
function answerUnavailable(req: IncomingMessage, res: ServerResponse, error: { code: string; message: string }) {
  const graphql = (req.url ?? '').startsWith('/graphql');
  req.resume();
  res
    .writeHead(503, { 'content-type': graphql ? 'application/graphql-response+json' : 'application/json; charset=utf-8' })
    .end(JSON.stringify(graphql ? { errors: [{ message: error.message, extensions: { code: error.code } }] } : error));
}

/** A local URL nothing listens on: connections to it are refused. */
export async function refusingUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return `http://127.0.0.1:${port}`;
}
