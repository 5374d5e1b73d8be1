// A pass-through stream that hashes and counts what flows through it and fails at the end when
// the bytes are not the ones announced, so a download is checked without a second read.
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

export class Sha256Verifier extends Transform {
  readonly #hash = createHash('sha256');
  readonly #expected: VerifyExpectation;
  bytes = 0;
  /** Set once the stream has ended. */
  sha256?: string;

  constructor(expected: VerifyExpectation = {}) {
    super();
    this.#expected = expected;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    this.bytes += chunk.length;
    if (this.#expected.size !== undefined && this.bytes > this.#expected.size) {
      return callback(new TesseraClientError('SIZE_MISMATCH', `More than the ${this.#expected.size} bytes announced arrived.`));
    }
    this.#expected.onBytes?.(this.bytes);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.sha256 = this.#hash.digest('hex');
    const { size, sha256 } = this.#expected;
    if (size !== undefined && this.bytes !== size) return callback(new TesseraClientError('SIZE_MISMATCH', `${this.bytes} bytes arrived; ${size} were announced.`));
    if (sha256 !== undefined && this.sha256 !== sha256) {
      return callback(new TesseraClientError('CHECKSUM_MISMATCH', `The bytes hash to ${this.sha256}, not the announced ${sha256}.`));
    }
    callback();
  }
}
