// GET / and GET /assets/*: the web console built by Vite into dist/console (`npm install` runs
// the build). The files are read and compressed once, on the first request, and answered from
// memory: a request's path is only ever a key of that table, never a filesystem path. The page
// is public (it holds no data; every call it makes needs the token signed in with), revalidated
// on each visit; the hashed assets are immutable. A strict CSP: scripts and styles from this
// origin only, no inline code, no framing.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import { errorBody, TesseraError } from '../errors.ts';
import { chooseEncoding } from './graphiql-delivery.ts';

const CONSOLE_DIR = new URL('../../dist/console/', import.meta.url).pathname;

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

interface Asset {
  type: string;
  etag: string;
  cacheControl: string;
  bodies: { identity: Buffer; br: Buffer; gzip: Buffer };
}

const brotli = promisify(brotliCompress);
const gzipped = promisify(gzip);

async function prepare(file: string, cacheControl: string): Promise<Asset> {
  const identity = await readFile(join(CONSOLE_DIR, file));
  const [br, gz] = await Promise.all([
    brotli(identity, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
    gzipped(identity, { level: 9 }),
  ]);
  return {
    type: TYPES[extname(file)] ?? 'application/octet-stream',
    etag: `"${createHash('sha256').update(identity).digest('hex').slice(0, 32)}"`,
    cacheControl,
    bodies: { identity, br, gzip: gz },
  };
}

/** URL path -> asset, for every file of the build; undefined when the console was not built. */
async function loadConsole(): Promise<Map<string, Asset> | undefined> {
  let assets: string[];
  try {
    assets = await readdir(join(CONSOLE_DIR, 'assets'));
  } catch {
    return undefined;
  }
  const table = new Map<string, Asset>([['/', await prepare('index.html', 'no-cache')]]);
  // Vite names every asset after a hash of its content: cached for a year, never revalidated.
  for (const name of assets) table.set(`/assets/${name}`, await prepare(join('assets', name), 'public, max-age=31536000, immutable'));
  return table;
}

const fresh = (header: string | undefined, etag: string) =>
  header !== undefined && header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);

function send(req: IncomingMessage, res: ServerResponse, asset: Asset) {
  const headers: Record<string, string | number> = {
    etag: asset.etag,
    'cache-control': asset.cacheControl,
    vary: 'accept-encoding',
    'x-content-type-options': 'nosniff',
    ...(asset.type.startsWith('text/html')
      ? { 'content-security-policy': CONSOLE_CSP, 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' }
      : {}),
  };
  if (fresh(req.headers['if-none-match'], asset.etag)) {
    res.writeHead(304, headers).end();
    return;
  }
  const encoding = chooseEncoding(req.headers['accept-encoding'] ?? null);
  const body = asset.bodies[encoding ?? 'identity'];
  if (encoding) headers['content-encoding'] = encoding;
  res.writeHead(200, { ...headers, 'content-type': asset.type, 'content-length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Answers GET/HEAD of the console's paths (true) or leaves the request to others (false). */
export function consoleRoute(): (req: IncomingMessage, res: ServerResponse, path: string) => boolean {
  let table: Promise<Map<string, Asset> | undefined> | undefined;
  return (req, res, path) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || (path !== '/' && !path.startsWith('/assets/'))) return false;
    table ??= loadConsole();
    table
      .then((assets) => {
        const asset = assets?.get(path);
        if (asset) return send(req, res, asset);
        const err = new TesseraError(
          'NOT_FOUND',
          assets ? undefined : 'The console is not built: run `npm install` (or `npm run build:console`).',
        );
        res.writeHead(err.status, { 'content-type': 'application/json; charset=utf-8' }).end(errorBody(err));
      })
      .catch((err: Error) =>
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`The console could not be read: ${err.message}`),
      );
    return true;
  };
}
