// The web console as the coordinator serves it (GET / and /assets/*, from dist/console, built by
// `npm install`): public, compressed per Accept-Encoding, the page revalidated by ETag (304),
// hashed assets immutable, a strict CSP without inline code; other paths stay someone else's or
// 404, and a path is never a filesystem path (../ escapes find nothing).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { repoRoot } from './support/datanode-process.ts';
import { rawGet } from './support/raw-get.ts';

const BUILT = path.join(repoRoot, 'dist/console/index.html');
const skipReason = existsSync(BUILT) ? undefined : 'the console is not built (npm install builds it; or npm run build:console)';
if (skipReason) console.warn(`console-route.test.ts skipped: ${skipReason}`);

describe.skipIf(skipReason !== undefined)(`the console's static route${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ datanodes: 1 });
  });
  afterAll(() => cluster?.close());

  /** A GET without a token, raw. */
  const get = (urlPath: string, headers: Record<string, string> = {}) => rawGet(`${cluster.url}${urlPath}`, headers);

  it('serves the page without a token, compressed, with a strict CSP and an ETag answered by 304', async () => {
    const html = readFileSync(BUILT, 'utf8');
    const br = await get('/', { 'accept-encoding': 'gzip, br' });
    expect(br.status).toBe(200);
    expect(br.headers['content-encoding']).toBe('br');
    expect(brotliDecompressSync(br.body).toString('utf8')).toBe(html);
    const gz = await get('/', { 'accept-encoding': 'gzip' });
    expect(gunzipSync(gz.body).toString('utf8')).toBe(html);
    expect(br.headers['cache-control']).toBe('no-cache');
    const csp = String(br.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/); // no inline script for the CSP to refuse
    const again = await get('/', { 'if-none-match': String(br.headers.etag) });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it('serves every asset the page names as immutable, and 404s anything else under /assets', async () => {
    const html = readFileSync(BUILT, 'utf8');
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const asset of assets) {
      const res = await get(asset);
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(res.body).toEqual(readFileSync(path.join(repoRoot, 'dist/console', asset)));
    }
    for (const missing of ['/assets/nope.js', '/assets/../index.html', '/assets/%2e%2e/%2e%2e/package.json']) {
      const res = await get(missing);
      expect(res.status, missing).toBe(404);
      expect(JSON.parse(res.body.toString()).code).toBe('NOT_FOUND');
    }
  });

  it('leaves GraphiQL and the image route where they were', async () => {
    expect((await get('/graphql', { accept: 'text/html' })).status).toBe(200);
    expect((await get('/images/none.png')).status).toBe(401);
  });
});
