// Differential fuzzing of our multipart parser (src/http/multipart.ts) against busboy: random
// bodies (random boundaries, names, filenames, bytes that imitate the delimiter) cut into random
// chunks must give the same fields and files; a mutated body ours accepts, busboy reads the same.
import busboy from 'busboy';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TEST_SEED } from './support/seed.ts';
import { readMultipart } from '../src/http/multipart.ts';

const LIMITS = { fileSize: 1 << 20, files: 16, fieldSize: 1 << 20, fields: 16 };

type Parsed = { fields: Record<string, string>; files: Record<string, { filename: string; type: string; data: string }> };

async function ours(body: Buffer, boundary: string, cuts: number[]): Promise<Parsed> {
  const chunks: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts, body.length]) {
    if (c > at) chunks.push(body.subarray(at, c));
    at = Math.max(at, c);
  }
  const { fields, files } = await readMultipart(Readable.from(chunks), boundary, LIMITS);
  const out: Parsed = { fields: Object.fromEntries(fields), files: {} };
  for (const [name, f] of files)
    out.files[name] = { filename: f.name, type: f.type, data: Buffer.concat(f.chunks as Buffer[]).toString('latin1') };
  return out;
}

function theirs(body: Buffer, boundary: string, cuts: number[]): Promise<Parsed> {
  return new Promise((resolve, reject) => {
    const out: Parsed = { fields: {}, files: {} };
    const bb = busboy({
      headers: { 'content-type': `multipart/form-data; boundary="${boundary}"` },
      limits: { fieldSize: LIMITS.fieldSize, fileSize: LIMITS.fileSize },
      defParamCharset: 'utf8',
      preservePath: true,
    });
    bb.on('field', (name, value) => (out.fields[name] = value));
    bb.on('file', (name, stream, info) => {
      const parts: Buffer[] = [];
      stream.on('data', (d: Buffer) => parts.push(d));
      stream.on(
        'end',
        () => (out.files[name] = { filename: info.filename ?? '', type: info.mimeType, data: Buffer.concat(parts).toString('latin1') }),
      );
    });
    bb.on('close', () => resolve(out));
    bb.on('error', reject);
    let at = 0;
    for (const c of [...cuts, body.length]) {
      if (c > at) bb.write(body.subarray(at, c));
      at = Math.max(at, c);
    }
    bb.end();
  });
}

const boundaryArb = fc.stringMatching(/^[A-Za-z0-9'()+_,.:=?-]{1,40}$/);
const nameArb = fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/);
/** Bytes that like to look like the delimiter: CR, LF, dashes, pieces of the boundary. */
const contentArb = (boundary: string) =>
  fc
    .array(
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
        fc
          .constantFrom('\r', '\n', '\r\n', '--', `\r\n--`, `--${boundary.slice(0, -1)}`, `\r\n--${boundary.slice(0, -1)}`, boundary)
          .map((s) => Buffer.from(s, 'latin1')),
      ),
      { maxLength: 20 },
    )
    .map((b) => Buffer.concat(b))
    // Content that holds the delimiter itself would end its part: not the body meant.
    .filter((c) => !Buffer.concat([Buffer.from('\r\n'), c]).includes(`\r\n--${boundary}`, 0, 'latin1'));

const bodyArb = boundaryArb.chain((boundary) =>
  fc
    .uniqueArray(
      fc.record({
        name: nameArb,
        filename: fc.option(nameArb, { nil: undefined }),
        type: fc.constantFrom('application/octet-stream', 'image/png', 'text/plain'),
        content: contentArb(boundary),
      }),
      { selector: (p) => p.name, minLength: 1, maxLength: 5 },
    )
    .chain((parts) => {
      const body = Buffer.concat([
        ...parts.flatMap((p) => [
          Buffer.from(
            `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"\r\nContent-Type: ${p.type}` : ''}\r\n\r\n`,
            'latin1',
          ),
          // Field values are compared as text: keep them valid UTF-8, with a stand-in no boundary
          // holds ('~'), so the replacement cannot make the delimiter the filter above kept out.
          p.filename !== undefined ? p.content : Buffer.from(p.content.toString('latin1').replace(/[\u0080-\u00ff]/g, '~'), 'latin1'),
          Buffer.from('\r\n', 'latin1'),
        ]),
        Buffer.from(`--${boundary}--\r\n`, 'latin1'),
      ]);
      return fc.record({
        boundary: fc.constant(boundary),
        body: fc.constant(body),
        cuts: fc.array(fc.integer({ min: 0, max: body.length }), { maxLength: 12 }).map((c) => c.sort((a, b) => a - b)),
      });
    }),
);

describe(`multipart parser vs busboy (seed ${TEST_SEED})`, () => {
  it('well-formed bodies cut into random chunks give the same fields and files', async () => {
    await fc.assert(
      fc.asyncProperty(bodyArb, async ({ boundary, body, cuts }) => {
        expect(await ours(body, boundary, cuts)).toEqual(await theirs(body, boundary, []));
      }),
      { seed: TEST_SEED, numRuns: 400 },
    );
  });

  it('a mutated body that ours accepts is read the same by busboy', async () => {
    const mutated = bodyArb.chain(({ boundary, body, cuts }) =>
      fc
        .array(fc.record({ at: fc.nat({ max: body.length - 1 }), byte: fc.constantFrom(0x0d, 0x0a, 0x22, 0x3b, 0x00) }), {
          minLength: 1,
          maxLength: 3,
        })
        .map((edits) => {
          const copy = Buffer.from(body);
          for (const e of edits) copy[e.at] = e.byte;
          return { boundary, body: copy, cuts };
        }),
    );
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(mutated, async ({ boundary, body, cuts }) => {
        let mine: Parsed;
        try {
          mine = await ours(body, boundary, cuts);
        } catch {
          return; // refused: busboy may be more lenient, and that is fine
        }
        accepted += 1;
        const other = await theirs(body, boundary, []).catch((err: Error) => err);
        if (other instanceof Error) throw new Error(`ours accepted a body busboy refuses (${other.message})`);
        // A part's Content-Type that is no media type: busboy says text/plain, we pass it on as
        // sent (uploadImage validates it before storing). The rest must agree.
        for (const [name, f] of Object.entries(mine.files)) {
          if (!/^[\w.+-]+\/[\w.+-]+$/.test(f.type) && other.files[name]) other.files[name].type = f.type;
        }
        expect(mine).toEqual(other);
      }),
      { seed: TEST_SEED, numRuns: 400 },
    );
    expect(accepted).toBeGreaterThan(20); // the comparison ran on real cases
  });
});
