// Checks bytes against an announced SHA-256 and size while they flow past, so a download is
// verified without a second read: a tally for loops that write themselves, and a Transform
// for stream pipelines.
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { TesseraClientError } from './errors.ts';

export interface VerifyExpectation {
  /** Lowercase hex SHA-256 the bytes must hash to. */
  sha256?: string;
  /** Exact byte count. */
  size?: number;
  onBytes?: (total: number) => void;
}

export function createSha256Tally(expected: VerifyExpectation = {}) {
  const hash = createHash('sha256');
  let bytes = 0;
  return {
    get bytes() {
      return bytes;
    },
    /** Counts and hashes a chunk; throws SIZE_MISMATCH as soon as more than the announced size arrived. */
    update(chunk: Uint8Array): void {
      hash.update(chunk);
      bytes += chunk.byteLength;
      if (expected.size !== undefined && bytes > expected.size)
        throw new TesseraClientError('SIZE_MISMATCH', `More than the ${expected.size} bytes announced arrived.`);
      expected.onBytes?.(bytes);
    },
    /** The digest of everything seen; throws SIZE_MISMATCH or CHECKSUM_MISMATCH when it is not the announced one. */
    finish(): { sha256: string; bytes: number } {
      const sha256 = hash.digest('hex');
      if (expected.size !== undefined && bytes !== expected.size)
        throw new TesseraClientError('SIZE_MISMATCH', `${bytes} bytes arrived; ${expected.size} were announced.`);
      if (expected.sha256 !== undefined && sha256 !== expected.sha256) {
        throw new TesseraClientError('CHECKSUM_MISMATCH', `The bytes hash to ${sha256}, not the announced ${expected.sha256}.`);
      }
      return { sha256, bytes };
    },
  };
}

/** A pass-through stream that fails at its end (or on excess bytes) when the bytes are not the announced ones. */
export class Sha256Verifier extends Transform {
  readonly #tally: ReturnType<typeof createSha256Tally>;
  /** Set once the stream has ended. */
  sha256?: string;

  constructor(expected: VerifyExpectation = {}) {
    super();
    this.#tally = createSha256Tally(expected);
  }

  get bytes(): number {
    return this.#tally.bytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#tally.update(chunk);
    } catch (err) {
      return callback(err as Error);
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.sha256 = this.#tally.finish().sha256;
    } catch (err) {
      return callback(err as Error);
    }
    callback();
  }
}
