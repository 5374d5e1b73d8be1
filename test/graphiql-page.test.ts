// GraphiQL as a browser gets it: compressed (brotli or gzip, per Accept-Encoding), with an ETag
// answered by 304 and Cache-Control, and a welcome text about Tessera that explains the
// Variables pane (not "Tessera is an in-browser tool for…").
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { chooseEncoding } from '../src/http/graphiql-delivery.ts';
import { startCluster, type TestCluster } from './support/cluster.ts';
import { rawGet } from './support/raw-get.ts';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ datanodes: 1 });
});
afterAll(() => cluster?.close());

/** GET /graphql as a browser asks for it. */
const getPage = (headers: Record<string, string>) => rawGet(`${cluster.url}/graphql`, { accept: 'text/html', ...headers });

it('sends the page brotli- or gzip-compressed, far smaller than the page itself', async () => {
  const plain = await getPage({ 'accept-encoding': 'identity' });
  expect(plain.status).toBe(200);
  expect(plain.headers['content-encoding']).toBeUndefined();
  const html = plain.body.toString('utf8');
  expect(html).toContain('<html');

  const br = await getPage({ 'accept-encoding': 'gzip, deflate, br' });
  expect(br.headers['content-encoding']).toBe('br');
  expect(br.headers.vary).toMatch(/accept-encoding/i);
  expect(brotliDecompressSync(br.body).toString('utf8')).toBe(html);
  expect(br.body.length).toBeLessThan(plain.body.length / 4);

  const gz = await getPage({ 'accept-encoding': 'gzip' });
  expect(gz.headers['content-encoding']).toBe('gzip');
  expect(gunzipSync(gz.body).toString('utf8')).toBe(html);
  expect(gz.body.length).toBeLessThan(plain.body.length / 3);
}, 60_000);

it('has an ETag and Cache-Control, and answers 304 to If-None-Match', async () => {
  const first = await getPage({ 'accept-encoding': 'gzip' });
  const etag = first.headers.etag as string;
  expect(etag).toMatch(/^"[0-9a-f]+"$/);
  expect(first.headers['cache-control']).toBe('no-cache');
  const again = await getPage({ 'accept-encoding': 'gzip', 'if-none-match': etag });
  expect(again.status).toBe(304);
  expect(again.body.length).toBe(0);
  expect((await getPage({ 'if-none-match': '"other"' })).status).toBe(200);
}, 60_000);

it('welcomes with a text about Tessera that explains the Variables pane', async () => {
  const html = (await getPage({})).body.toString('utf8');
  expect(html).toContain("Welcome to Tessera's GraphiQL");
  expect(html).toContain('Variables pane');
  expect(html).not.toMatch(/Tessera is an in-browser tool/);
}, 60_000);

it('picks brotli, then gzip, and honours q=0', () => {
  expect(chooseEncoding('gzip, br')).toBe('br');
  expect(chooseEncoding('gzip;q=1, br;q=0')).toBe('gzip');
  expect(chooseEncoding('identity')).toBeUndefined();
  expect(chooseEncoding(null)).toBeUndefined();
  expect(chooseEncoding('*')).toBe('br');
});
