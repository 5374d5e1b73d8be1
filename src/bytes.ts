// Fragment bytes as the chunks they arrived in (socket reads, multipart parts): measured, sliced,
// hashed and sent without joining them into one buffer, since a 2 MiB copy costs about as much
// as hashing it.
import { createHash } from 'node:crypto';

/** One buffer, or consecutive chunks that together are the bytes. */
export type Bytes = Buffer | readonly Buffer[];

export const byteLength = (data: Bytes): number => (Buffer.isBuffer(data) ? data.length : data.reduce((n, c) => n + c.length, 0));

export const chunksOf = (data: Bytes): readonly Buffer[] => (Buffer.isBuffer(data) ? [data] : data);

/** Lowercase hex SHA-256 of the bytes. */
export function sha256Hex(data: Uint8Array | Bytes): string {
  const hash = createHash('sha256');
  if (data instanceof Uint8Array) hash.update(data);
  else for (const chunk of data) hash.update(chunk);
  return hash.digest('hex');
}

/** The bytes [from, to) as views of the chunks (no copy). */
export function sliceBytes(data: Bytes, from: number, to: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const chunk of chunksOf(data)) {
    if (at >= to) break;
    const a = Math.max(from - at, 0);
    const b = Math.min(to - at, chunk.length);
    if (a < b) out.push(a === 0 && b === chunk.length ? chunk : chunk.subarray(a, b));
    at += chunk.length;
  }
  return out;
}

/**
 * The chunks of a Blob/File (a multipart part) as they are held: Blob.stream() hands them over
 * without a copy, where arrayBuffer() joins them and Buffer.from(arrayBuffer) may copy again.
 */
export async function blobChunks(blob: { stream?(): unknown; arrayBuffer(): Promise<ArrayBuffer> }): Promise<Buffer[]> {
  // @whatwg-node's File (what Yoga's multipart parser makes) keeps the parts it was built from:
  // taken as they are, they save a ReadableStream round trip per part, dozens per fragment.
  // A ReceivedFile (our multipart parser) holds its chunks as `chunks`.
  const own = (blob as { chunks?: unknown }).chunks;
  if (Array.isArray(own) && own.every((p) => Buffer.isBuffer(p))) return (own as Buffer[]).slice();
  const parts = (blob as { blobParts?: unknown }).blobParts;
  if (Array.isArray(parts) && parts.every((p) => Buffer.isBuffer(p))) return (parts as Buffer[]).slice();
  if (typeof blob.stream !== 'function') return [Buffer.from(await blob.arrayBuffer())];
  const chunks: Buffer[] = [];
  for await (const chunk of blob.stream() as AsyncIterable<Uint8Array>) {
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  return chunks;
}
