// GET, PUT and DELETE /fragments/{id}: a fragment's bytes checked against their SHA-256, and
// deletions that never remove what a live manifest here still references.
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  CONTENT_SHA256_HEADER,
  DELETED_IMAGE_HEADER,
  DELETE_REASON_HEADER,
  MANIFEST_HEADER,
  SHA256_HEX_PATTERN,
  SURPLUS_REPLICA,
  isImageKey,
  parseRecord,
  type ImageManifest,
} from '../src/shared/datanode-api.ts';
import type { DatanodeContext } from './datanode-context.ts';
import { headerValue, sendError } from './replies.ts';
import { UnreadableFragmentError } from './store.ts';

export async function getFragment({ store, logger }: DatanodeContext, id: string, res: ServerResponse): Promise<void> {
  let fragment;
  try {
    fragment = await store.get(id);
  } catch (err) {
    if (!(err instanceof UnreadableFragmentError)) throw err;
    logger.error({ id, err: err.message }, 'fragment unreadable');
    return sendError(res, 'FRAGMENT_UNREADABLE', `fragment ${id} cannot be read`);
  }
  if (fragment === undefined) return sendError(res, 'FRAGMENT_NOT_FOUND', `no fragment ${id}`);
  res.writeHead(200, {
    'Content-Type': 'application/octet-stream',
    'Content-Length': fragment.bytes.length,
    // The hash of the bytes just read from disk (store.get), never one remembered from the write:
    // the coordinator serves a client that checks the body itself (X-Tessera-Client-Checks)
    // without hashing the fragment again, comparing this with the index; a stored hash would let
    // a replica corrupted on disk through. Pinned by test/datanode-fragment-hash.test.ts.
    [CONTENT_SHA256_HEADER]: fragment.sha256,
  });
  res.end(fragment.bytes);
}

/**
 * Never deletes what a live manifest here references, unless the request names that image as
 * deleted (its tombstone is recorded first, durably) or says the copy is a surplus replica: a
 * coordinator with an empty or stale index, which knows neither, cannot wipe stored images.
 */
export async function deleteFragment(
  { store, records, logger }: DatanodeContext,
  id: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const owner = records.liveOwnerOf(id);
  const deletedImage = headerValue(req.headers[DELETED_IMAGE_HEADER]);
  const reason = headerValue(req.headers[DELETE_REASON_HEADER]);
  if (deletedImage !== undefined && !isImageKey(deletedImage))
    return sendError(res, 'INVALID_RECORD', `${DELETED_IMAGE_HEADER} is not an image id`);
  if (owner !== undefined) {
    if (deletedImage === owner) {
      await records.add({ kind: 'tombstone', image: owner, deletedAt: Date.now() });
      logger.info({ image: owner, fragment: id }, 'image tombstoned by a fragment deletion');
    } else if (reason !== SURPLUS_REPLICA) {
      logger.warn({ fragment: id, image: owner, reason }, 'refused to delete a fragment of a live image');
      return sendError(res, 'FRAGMENT_IN_USE', `fragment ${id} belongs to live image ${owner}; a deletion must name it as deleted`);
    }
  } else if (deletedImage !== undefined) {
    // A fragment whose manifest is elsewhere: the tombstone is kept here too (one more copy).
    await records.add({ kind: 'tombstone', image: deletedImage, deletedAt: Date.now() });
  }
  await store.delete(id);
  logger.debug({ fragment: id, reason, image: deletedImage }, 'fragment deleted');
  res.writeHead(204).end();
}

export async function putFragment(ctx: DatanodeContext, id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { store, records, logger, maxFragmentBytes } = ctx;
  const manifest = manifestHeaderOf(req, id);
  if (manifest === 'invalid')
    return sendError(res, 'INVALID_RECORD', `${MANIFEST_HEADER} is not a manifest of an image holding fragment ${id}`);
  const expected = headerValue(req.headers[CONTENT_SHA256_HEADER])?.trim().toLowerCase();
  if (expected === undefined || !SHA256_HEX_PATTERN.test(expected)) {
    return sendError(res, 'INVALID_CHECKSUM_HEADER', `${CONTENT_SHA256_HEADER} must be the hex SHA-256 of the body`);
  }
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxFragmentBytes) return sendTooLarge(ctx, res);
  // The manifest once the fragment is in place (never naming bytes this datanode failed to
  // keep), its journal sync alongside the fragment's directory sync.
  const result = await store.put(id, req, {
    expectedSha256: expected,
    maxBytes: maxFragmentBytes,
    declaredBytes: declared === undefined ? undefined : Number(declared),
    alongside: manifest && (() => records.add(manifest)),
  });
  if (result.ok) {
    logger.debug({ id, size: result.size }, 'fragment stored');
    res.writeHead(201).end();
    return;
  }
  if (result.reason === 'too-large') return sendTooLarge(ctx, res);
  logger.warn({ id, expected, actual: result.sha256 }, 'fragment checksum mismatch');
  return sendError(res, 'CHECKSUM_MISMATCH', `body hashes to ${result.sha256}, header says ${expected}`);
}

/** The manifest sent along with fragment `id` (undefined: none), or 'invalid' when it does not hold it. */
function manifestHeaderOf(req: IncomingMessage, id: string): ImageManifest | undefined | 'invalid' {
  const header = headerValue(req.headers[MANIFEST_HEADER]);
  if (header === undefined) return undefined;
  let parsed;
  try {
    parsed = parseRecord(JSON.parse(Buffer.from(header, 'base64url').toString('utf8')));
  } catch {
    parsed = undefined;
  }
  return parsed?.kind === 'manifest' && parsed.fragments.some((f) => f.id === id) ? parsed : 'invalid';
}

function sendTooLarge({ maxFragmentBytes }: DatanodeContext, res: ServerResponse): void {
  // The rest of the body stays unread: close the connection rather than drain it.
  res.setHeader('Connection', 'close');
  sendError(res, 'PAYLOAD_TOO_LARGE', `a fragment holds at most ${maxFragmentBytes} bytes`);
}
