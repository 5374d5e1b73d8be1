// The download's socket reader (src/client/raw-get.ts) against stand-in coordinators that answer
// in every shape it must handle: a plain body read whole, answers it does not frame (chunked)
// taken through node:http instead, error statuses with their codes, a body cut short, a consumer
// that makes it wait, an abort. The happy path against a real cluster is client-download's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTesseraClient } from '../src/client/index.ts';
import { rawGet } from '../src/client/raw-get.ts';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const body = randomBytes(3 * 1024 * 1024 + 17);
const etag = `"${sha256(body)}"`;

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
let handler: Handler = () => {};
let server: http.Server;
let url: string;
let dir: string;
const requests: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-raw-get-'));
  server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await rm(dir, { recursive: true, force: true });
});

async function downloadWith(h: Handler, name = 'x.bin') {
  handler = h;
  requests.length = 0;
  const client = createTesseraClient({ url, stateDir: false, token: 'secret-token' });
  const out = join(dir, name);
  try {
    return { result: await client.download('cats/x.bin', out).catch((e: Error) => e), out };
  } finally {
    client.close();
  }
}

describe('tessera download through the socket reader', () => {
  it('writes a plain Content-Length body whole and verified, sending the token once', async () => {
    const { result, out } = await downloadWith((_req, res) =>
      res.writeHead(200, { etag, 'content-length': body.length, 'content-type': 'image/png' }).end(body),
    );
    expect(result).toMatchObject({ size: body.length, sha256: sha256(body), contentType: 'image/png' });
    expect((await readFile(out)).equals(body)).toBe(true);
    expect(requests).toEqual(['GET /images/cats%2Fx.bin Bearer secret-token']);
  });

  it('takes a chunked answer through node:http instead, with the same result', async () => {
    const { result, out } = await downloadWith((_req, res) => {
      res.writeHead(200, { etag, 'content-type': 'image/png' }); // no length: chunked
      res.write(body.subarray(0, 1000));
      res.end(body.subarray(1000));
    }, 'chunked.bin');
    expect(result).toMatchObject({ size: body.length, sha256: sha256(body) });
    expect((await readFile(out)).equals(body)).toBe(true);
    expect(requests).toHaveLength(2);
  });

  it("turns an error status into the body's code, and leaves no file", async () => {
    const { result } = await downloadWith((_req, res) => {
      const text = JSON.stringify({ code: 'IMAGE_NOT_FOUND', message: 'No stored image is named "cats/x.bin".' });
      res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    }, 'missing.bin');
    expect(result).toMatchObject({ code: 'IMAGE_NOT_FOUND', status: 404 });
    expect(await readdir(dir)).not.toContain('missing.bin');
  });

  it('does not read an error answer past its cap into memory', async () => {
    const { result } = await downloadWith((_req, res) => {
      // Claims 64 MiB of error body and sends a little: the reader must give up on the claim alone.
      res.writeHead(500, { 'content-type': 'application/json', 'content-length': 64 * 1024 * 1024 }).write('{"code":');
    }, 'huge-error.bin');
    expect(result).toMatchObject({ code: 'NETWORK_ERROR' });
    expect(String((result as Error).message)).toMatch(/over 1048576/);
    expect(await readdir(dir)).not.toContain('huge-error.bin');
  });

  it('fails a body cut short with NETWORK_ERROR and leaves no partial or temporary file', async () => {
    const { result } = await downloadWith((_req, res) => {
      res.writeHead(200, { etag, 'content-length': body.length });
      res.write(body.subarray(0, 1024 * 1024), () => res.destroy());
    }, 'short.bin');
    expect(result).toMatchObject({ code: 'NETWORK_ERROR' });
    expect((await readdir(dir)).filter((f) => f.includes('short'))).toEqual([]);
  });

  it('refuses bytes that do not hash to the ETag', async () => {
    const other = Buffer.from(body);
    other[12345] ^= 1;
    const { result } = await downloadWith(
      (_req, res) => res.writeHead(200, { etag, 'content-length': other.length }).end(other),
      'corrupt.bin',
    );
    expect(result).toMatchObject({ code: 'CHECKSUM_MISMATCH' });
    expect((await readdir(dir)).filter((f) => f.includes('corrupt'))).toEqual([]);
  });
});

describe('rawGet', () => {
  const target = (path = '/x') => {
    const { hostname, port, host } = new URL(url);
    return { hostname, port: Number(port), host, path, headers: {}, timeoutMs: 10_000 };
  };

  it('holds reads back while the consumer waits, and hands over every byte in order', async () => {
    handler = (_req, res) => res.writeHead(200, { 'content-length': body.length }).end(body);
    const res = await rawGet(target());
    if (res === 'unsupported') throw new Error('a plain answer was not read');
    const chunks: Buffer[] = [];
    let waiting = false;
    let overlapped = false;
    await res.pipeTo((chunk) => {
      if (waiting) overlapped = true;
      chunks.push(chunk);
      waiting = true;
      return new Promise((r) => setImmediate(r)).then(() => (waiting = false));
    });
    expect(overlapped).toBe(false);
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
  });

  it('refuses a request it cannot write as given (node:http says why)', async () => {
    expect(await rawGet({ ...target('/a b') })).toBe('unsupported');
    expect(await rawGet({ ...target(), headers: { authorization: 'Bearer a\r\nX: y' } })).toBe('unsupported');
  });

  it("an abort ends the body with the signal's reason", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 1000)); // and never the rest
    };
    const controller = new AbortController();
    const res = await rawGet({ ...target(), signal: controller.signal });
    if (res === 'unsupported') throw new Error('a plain answer was not read');
    const reading = res.pipeTo(() => void controller.abort(new Error('stop')));
    await expect(reading).rejects.toThrow('stop');
  });
});
