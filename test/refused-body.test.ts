// endAfterRest (src/http/refused-body.ts): the answer to a refused body is written at once and the
// response ends once the rest is dropped, with end() keeping ServerResponse's own contract.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { endAfterRest } from '../src/http/refused-body.ts';

let server: http.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  server = undefined;
});

it('end(chunk, encoding, callback) sends the chunk once, calls back, and a second end() adds nothing', async () => {
  let calledBack = false;
  server = http.createServer((req, res) => {
    endAfterRest(req, res);
    res.writeHead(413, { 'content-type': 'text/plain' });
    res.end('ok', 'utf8', () => (calledBack = true));
    res.end('ok');
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const answer = await fetch(`http://127.0.0.1:${port}/`, { method: 'PUT', body: 'x'.repeat(1000) });
  expect(answer.status).toBe(413);
  expect(answer.headers.get('connection')).toBe('close');
  expect(await answer.text()).toBe('ok');
  await expect.poll(() => calledBack).toBe(true);
});
