// POST /deletions: many tombstones and fragment deletions in one request, so that a burst of
// image deletions costs the coordinator few requests and this datanode few journal syncs. Each
// fragment is judged exactly as DELETE /fragments/{id} judges it: nothing a live manifest here
// references goes without proof (its image's tombstone, or a surplus-replica reason).
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  CONTENT_SHA256_HEADER,
  SHA256_HEX_PATTERN,
  SURPLUS_REPLICA,
  parseDeletionBatch,
  type DeletionBatchAnswer,
  type DeletionOutcome,
  type ImageTombstone,
} from '../src/shared/datanode-api.ts';
import type { DatanodeContext } from './datanode-context.ts';
import { headerValue, sendError, sendJson } from './replies.ts';

/** MAX_DELETION_BATCH entries of the longest ids and reasons are well under this. */
const MAX_BATCH_BYTES = 1024 * 1024;

export async function postDeletions(ctx: DatanodeContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { store, records, logger } = ctx;
  // The body's hash is part of the signed request: a batch cannot be altered on the way.
  const expected = headerValue(req.headers[CONTENT_SHA256_HEADER])?.trim().toLowerCase();
  if (expected === undefined || !SHA256_HEX_PATTERN.test(expected)) {
    return sendError(res, 'INVALID_CHECKSUM_HEADER', `${CONTENT_SHA256_HEADER} must be the hex SHA-256 of the body`);
  }
  const body = await readBody(req, MAX_BATCH_BYTES);
  if (body === undefined) {
    res.setHeader('Connection', 'close');
    return sendError(res, 'PAYLOAD_TOO_LARGE', `a deletion batch holds at most ${MAX_BATCH_BYTES} bytes`);
  }
  const actual = createHash('sha256').update(body).digest('hex');
  if (actual !== expected) return sendError(res, 'CHECKSUM_MISMATCH', `body hashes to ${actual}, header says ${expected}`);
  let batch;
  try {
    batch = parseDeletionBatch(JSON.parse(body.toString('utf8')));
  } catch {
    batch = undefined;
  }
  if (!batch) return sendError(res, 'INVALID_DELETION_BATCH', 'the body is not a deletion batch ({ tombstones, fragments })');

  // 1. The tombstones sent as such, then those the deletions carry: a deletion names its image
  // as deleted, and is believed, when no other live image here references the fragment (as on
  // DELETE /fragments/{id}). All of them share the journal's group commit.
  await Promise.all(batch.tombstones.map((t) => records.add(t)));
  const deletedAt = Date.now();
  const carried = new Map<string, ImageTombstone>();
  for (const f of batch.fragments) {
    if (f.deletedImage === undefined || carried.has(f.deletedImage)) continue;
    const owner = records.liveOwnerOf(f.id);
    if (owner === undefined || owner === f.deletedImage)
      carried.set(f.deletedImage, { kind: 'tombstone', image: f.deletedImage, deletedAt });
  }
  await Promise.all([...carried.values()].map((t) => records.add(t)));

  // 2. Each fragment, judged against the records as they are now (the tombstones above included).
  const outcomes: DeletionOutcome[] = batch.fragments.map((f) => {
    const owner = records.liveOwnerOf(f.id);
    return owner === undefined || f.reason === SURPLUS_REPLICA ? 'deleted' : 'in-use';
  });
  await Promise.all(batch.fragments.map((f, i) => (outcomes[i] === 'deleted' ? store.delete(f.id) : undefined)));
  batch.fragments.forEach((f, i) => {
    if (outcomes[i] === 'in-use')
      logger.warn({ fragment: f.id, image: records.liveOwnerOf(f.id), reason: f.reason }, 'refused to delete a fragment of a live image');
    else logger.debug({ fragment: f.id, reason: f.reason, image: f.deletedImage }, 'fragment deleted');
  });
  if (carried.size > 0 || batch.tombstones.length > 0)
    logger.info({ tombstones: batch.tombstones.length + carried.size, fragments: batch.fragments.length }, 'deletion batch recorded');
  const answer: DeletionBatchAnswer = { fragments: outcomes };
  sendJson(res, 200, answer);
}

/** The whole body, or undefined once it passes `max` bytes (the rest left unread). */
async function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
