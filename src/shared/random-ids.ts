// Random ids and nonces drawn from one CSPRNG pool, refilled 4 KiB at a time (as Node does for
// crypto.randomUUID): crypto.randomBytes costs a synchronous crypto job per call, which on the
// coordinator's hot paths (a nonce per datanode request, the ids of every upload) was 2-3% of
// its CPU per small image. Every byte of the pool is handed out once.
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let used = POOL_BYTES;

function take(bytes: number): [start: number, end: number] {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > POOL_BYTES) throw new RangeError(`random ids are 1 to ${POOL_BYTES} bytes`);
  if (used + bytes > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const start = used;
  used += bytes;
  return [start, used];
}

/** `bytes` random bytes as lowercase hex. */
export const randomHex = (bytes: number): string => pool.toString('hex', ...take(bytes));

/** `bytes` random bytes as base64url (no padding). */
export const randomBase64url = (bytes: number): string => pool.toString('base64url', ...take(bytes));
