// readBody (the raw-body routes' reader): a request that ended or was destroyed before it is
// called (the client went away during the auth or upload look-up before) settles at once rather
// than waiting for an idle timer no byte will ever re-arm.
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { readBody } from '../src/http/raw-body.ts';
import { createBodyBudget } from '../src/memory-budget.ts';

let server: http.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

/**
 * Serves one request: `before` runs first (as the awaits before readBody do), then readBody with
 * no idle timeout at all (0), so only the request's own state can settle it. Its outcome.
 */
async function readAfter(
  before: (req: http.IncomingMessage) => Promise<unknown>,
  send: (req: http.ClientRequest) => void,
): Promise<{ chunks?: Buffer[]; err?: NodeJS.ErrnoException; used: number }> {
  const budget = createBodyBudget(1 << 20);
  type Outcome = { chunks?: Buffer[]; err?: NodeJS.ErrnoException; used: number };
  let settled!: (outcome: Outcome) => void;
  const outcome = new Promise<Outcome>((resolve) => (settled = resolve));
  const s = http.createServer((req, res) => {
    void before(req)
      .then(() => readBody(req, 1 << 20, budget, 0, { held: 0 }))
      .then(
        (chunks) => settled({ chunks, used: budget.used }),
        (err: NodeJS.ErrnoException) => settled({ err, used: budget.used }),
      )
      .finally(() => res.destroy());
  });
  server = s;
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  const req = http.request({ port, host: '127.0.0.1', method: 'PUT', headers: { 'content-length': '1000' } });
  req.on('error', () => {});
  send(req);
  return outcome;
}

describe('readBody', () => {
  it('rejects at once (ECONNRESET, as a client gone mid-body) when the client went away before it was called', async () => {
    let client!: http.ClientRequest;
    const { err, chunks } = await readAfter(
      async (req) => {
        // Not events.once: it would reject on the 'error' that a listener for it makes the request emit.
        const closed = new Promise((resolve) => req.once('close', resolve));
        client.destroy(); // the client goes away while the route awaits something else
        await closed;
        expect(req.destroyed).toBe(true);
      },
      (req) => {
        client = req;
        req.write(Buffer.alloc(100));
      },
    );
    expect(chunks).toBeUndefined();
    expect(err?.code).toBe('ECONNRESET');
  });

  it('answers no chunks at once when the body was already read to its end', async () => {
    const { err, chunks, used } = await readAfter(
      async (req) => {
        req.resume();
        await once(req, 'end');
      },
      (req) => req.end(Buffer.alloc(1000)),
    );
    expect(err).toBeUndefined();
    expect(chunks).toEqual([]);
    expect(used).toBe(0);
  });

  it('reads a body that is still arriving as before', async () => {
    const { chunks } = await readAfter(
      async () => {},
      (req) => req.end(Buffer.alloc(1000, 7)),
    );
    expect(Buffer.concat(chunks!)).toEqual(Buffer.alloc(1000, 7));
  });
});
