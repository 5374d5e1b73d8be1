// The coordinator's own multipart/form-data reader (src/http/multipart.ts): the same parts
// whatever the chunking of the body, the limits, and what it refuses.
import { describe, expect, it } from 'vitest';
import { boundaryOf, readMultipart } from '../src/http/multipart.ts';
import { seededBytes, seededRandom, TEST_SEED } from './support/seed.ts';

const limits = { fileSize: 1 << 20, files: 4, fieldSize: 1 << 16 };
const BOUNDARY = '----tessera-test-7MA4YWxkTrZu0gW';

function body(parts: { name: string; filename?: string; type?: string; data: Buffer }[], boundary = BOUNDARY): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`;
    out.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`),
      p.data,
      Buffer.from('\r\n'),
    );
  }
  out.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(out);
}

async function* chunked(data: Buffer, sizes: () => number) {
  for (let at = 0; at < data.length;) {
    const n = Math.max(1, sizes());
    yield data.subarray(at, at + n);
    at += n;
  }
}

const joined = (chunks: readonly Buffer[]) => Buffer.concat(chunks);

describe(`readMultipart (seed ${TEST_SEED})`, () => {
  const random = seededRandom(TEST_SEED);
  const randomBytes = (n: number) => seededBytes(random, n);
  // Bytes that look like the delimiter's start: CRs, CRLF--, a near-boundary.
  const tricky = Buffer.concat([Buffer.from(`\r\r\n\r\n-\r\n--${BOUNDARY.slice(0, -1)}X\r\n--`), randomBytes(3000), Buffer.from('\r')]);
  const parts = [
    { name: 'operations', data: Buffer.from('{"query":"mutation($f: File!) { x(f: $f) }","variables":{"f":null}}') },
    { name: 'map', data: Buffer.from('{"0":["variables.f"]}') },
    { name: '0', filename: 'a.png', type: 'image/png', data: tricky },
    { name: 'empty', filename: '', data: Buffer.alloc(0) },
  ];
  const whole = body(parts);

  it('reads the same parts whatever the chunk sizes', async () => {
    const splits: (() => number)[] = [() => whole.length, () => 1, () => 2, () => 3, () => 7, () => 64, () => BOUNDARY.length + 3];
    for (let i = 0; i < 30; i++) splits.push(() => 1 + Math.floor(random() * 90));
    for (const sizes of splits) {
      const { fields, files } = await readMultipart(chunked(whole, sizes), BOUNDARY, limits);
      expect(fields.get('operations')).toBe(parts[0].data.toString());
      expect(fields.get('map')).toBe(parts[1].data.toString());
      const file = files.get('0')!;
      expect(file.name).toBe('a.png');
      expect(file.type).toBe('image/png');
      expect(file.size).toBe(tricky.length);
      expect(joined(file.chunks).equals(tricky)).toBe(true);
      expect(files.get('empty')!.size).toBe(0);
    }
  });

  it('hands file bytes over as views of the received chunks', async () => {
    const data = randomBytes(200_000);
    const received: Buffer[] = [];
    const source = async function* () {
      for await (const c of chunked(body([{ name: 'f', filename: 'f', data }]), () => 65536)) {
        received.push(c);
        yield c;
      }
    };
    const { files } = await readMultipart(source(), BOUNDARY, limits);
    const chunks = files.get('f')!.chunks;
    expect(joined(chunks).equals(data)).toBe(true);
    for (const c of chunks) expect(received.some((r) => r.buffer === c.buffer)).toBe(true);
  });

  it('takes a quoted boundary and one with a preamble and transport padding', async () => {
    expect(boundaryOf(`multipart/form-data; boundary="${BOUNDARY}"`)).toBe(BOUNDARY);
    expect(boundaryOf(`multipart/form-data; charset=utf-8; boundary=${BOUNDARY}`)).toBe(BOUNDARY);
    expect(boundaryOf('multipart/form-data')).toBeUndefined();
    const padded = Buffer.concat(
      [
        Buffer.from('preamble text\r\n'),
        body([{ name: 'a', data: Buffer.from('x') }])
          .toString()
          .replace(`--${BOUNDARY}\r\n`, `--${BOUNDARY}  \r\n`),
      ].map((b) => Buffer.from(b)),
    );
    const { fields } = await readMultipart(
      chunked(padded, () => 5),
      BOUNDARY,
      limits,
    );
    expect(fields.get('a')).toBe('x');
  });

  it('refuses a file over the size limit, too many files, a truncated body, a part without a name', async () => {
    await expect(
      readMultipart(
        chunked(body([{ name: 'f', filename: 'f', data: Buffer.alloc(limits.fileSize + 1) }]), () => 65536),
        BOUNDARY,
        limits,
      ),
    ).rejects.toMatchObject({ tooLarge: true });
    const many = body(Array.from({ length: 5 }, (_, i) => ({ name: `f${i}`, filename: 'f', data: Buffer.from('x') })));
    await expect(
      readMultipart(
        chunked(many, () => 100),
        BOUNDARY,
        limits,
      ),
    ).rejects.toMatchObject({ tooLarge: true });
    await expect(
      readMultipart(
        chunked(whole.subarray(0, whole.length - 10), () => 100),
        BOUNDARY,
        limits,
      ),
    ).rejects.toThrow(/ended before/);
    const nameless = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--${BOUNDARY}--\r\n`);
    await expect(
      readMultipart(
        chunked(nameless, () => 100),
        BOUNDARY,
        limits,
      ),
    ).rejects.toThrow(/no name/);
  });
});
