// PUT /images/{name}: the whole image as the raw request body, stored as uploadImage stores it,
// as an object store's PUT does (S3, Swift). On plain node:http, like GET /images/{name}: a small
// image skips the GraphQL layer (Yoga's request objects, multipart parsing, parse/validate/execute),
// which cost the coordinator as much CPU per 100 KB image as storing it does.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody, TesseraError } from '../errors.ts';
import type { Auth } from '../auth/service.ts';
import { authorizeImageChange } from '../auth/image-access.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import type { BodyBudget } from '../memory-budget.ts';
import { assertImageName } from '../names.ts';
import type { Uploads } from '../uploads.ts';
import { IMAGE_PATH_PREFIX } from '../image-paths.ts';
import { STALLED_SOURCE_GRACE_MS } from './multipart.ts';
import { imageNameOf } from './image-route.ts';

export interface ImageUploadDeps {
  auth: Auth;
  uploads: Uploads;
  /** The largest body taken (--max-upload-image-size). */
  maxBytes: number;
  /** Shared with multipart bodies: what bodies being read hold together. */
  budget: BodyBudget;
  idleTimeoutMs: number;
}

/** Whether this is a PUT /images/{name}. */
export const isImageUpload = (req: IncomingMessage, path: string) => req.method === 'PUT' && path.startsWith(IMAGE_PATH_PREFIX);

/** Answers a PUT /images/{name}: 201 with the stored image as JSON, or {code, message}. */
export async function handleImageUpload(req: IncomingMessage, res: ServerResponse, path: string, deps: ImageUploadDeps): Promise<void> {
  try {
    const image = await storeUpload(req, path, deps);
    send(res, 201, JSON.stringify(describe(image)), { location: `${IMAGE_PATH_PREFIX}${encodeURIComponent(image.name)}` });
  } catch (err) {
    answerRefusal(req, res, err);
  }
}

/**
 * A raw-body route's failure as {code, message} with its status; rethrows what is not a
 * TesseraError (a fault: the caller answers 500). Shared with PUT /uploads/{id}/fragments/{index}.
 */
export function answerRefusal(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  // The client went away mid-body: nothing was stored and nobody is left to answer; not a fault.
  if (!req.complete && (req.destroyed || (err as NodeJS.ErrnoException)?.code === 'ECONNRESET')) return void res.destroy();
  const known = err instanceof TesseraError ? err : undefined;
  if (!known) throw err;
  const extra = (known.extensions.http as { headers?: Record<string, string> } | undefined)?.headers ?? {};
  // A body left unread (refused before it was read) would be taken for the next request.
  const unread = !req.readableEnded;
  send(res, known.status, errorBody(known), unread ? { ...extra, connection: 'close' } : extra);
  if (unread) req.resume();
}

async function storeUpload(req: IncomingMessage, path: string, { auth, uploads, maxBytes, budget, idleTimeoutMs }: ImageUploadDeps) {
  const name = imageNameOf(path.slice(IMAGE_PATH_PREFIX.length));
  await authorizeImageChange(auth, req, 'PUT /images/{name}');
  assertImageName(name);
  // As DELETE: a query would read as a rendition or a signed URL, neither of which is stored.
  if ((req.url ?? '').includes('?')) throw new TesseraError('BAD_USER_INPUT', 'PUT /images/{name} takes no query parameters.');
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(maxBytes);
  const body = { held: 0 };
  try {
    const chunks = await readBody(req, maxBytes, budget, idleTimeoutMs, body);
    const size = chunks.reduce((n, c) => n + c.length, 0);
    if (size === 0) throw new TesseraError('BAD_USER_INPUT', 'The body is empty: PUT the image as the request body.');
    uploads.assertWholeSize(size);
    const type = req.headers['content-type']?.split(';')[0].trim().toLowerCase();
    return await uploads.uploadWhole(name, chunks, type && type !== 'application/octet-stream' ? type : undefined);
  } finally {
    // The chunks stay in memory until the image is stored (up to the datanodes' deadline): so does their charge.
    budget.release(body.held);
  }
}

/**
 * The body's chunks as they arrived (no join), within `maxBytes` and the shared budget (charged to
 * `body.held`); REQUEST_TIMEOUT when no byte arrives for `idleTimeoutMs` (0: none). Read off the
 * stream's 'data' events with one idle timer re-armed per chunk: an async iterator with a timer
 * and a Promise.race per 64 KiB chunk cost about 5% of the coordinator's CPU on a chunked upload.
 * As a for-await over the body would, a refusal part-way destroys the request; a stalled one is
 * destroyed only once its 408 has had STALLED_SOURCE_GRACE_MS to get out.
 */
export function readBody(
  req: IncomingMessage,
  maxBytes: number,
  budget: BodyBudget,
  idleTimeoutMs: number,
  body: { held: number },
): Promise<Buffer[]> {
  // The client may have gone (or the body been read) during the awaits before this call: a
  // destroyed or ended request emits nothing more, so waiting would last until the idle timer.
  if (req.readableEnded) return Promise.resolve([]);
  if (req.destroyed || req.readableAborted) return Promise.reject(clientGone());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const settle = (err?: unknown) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err === undefined) resolve(chunks);
      else reject(err);
    };
    const refuse = (err: TesseraError) => {
      settle(err);
      req.destroy();
    };
    const onData = (chunk: Buffer) => {
      if (body.held + chunk.length > maxBytes) return refuse(tooLarge(maxBytes));
      if (!budget.tryCharge(body.held, chunk.length)) return refuse(new TesseraError('SERVER_BUSY'));
      body.held += chunk.length;
      chunks.push(chunk);
      timer?.refresh();
    };
    const onEnd = () => settle();
    const onError = (err: Error) => settle(err);
    // Destroyed without an error (the server closing it): not a whole body.
    const onClose = () => settle(clientGone());
    req.on('data', onData).once('end', onEnd).once('error', onError).once('close', onClose);
    if (idleTimeoutMs > 0) {
      timer = setTimeout(() => {
        settle(
          new TesseraError('REQUEST_TIMEOUT', `The request body stopped arriving: no byte of the body arrived for ${idleTimeoutMs} ms.`),
        );
        // Stops the stalled source once the client has had its 408 (destroying it now would cut the answer off too).
        setTimeout(() => req.destroy(), STALLED_SOURCE_GRACE_MS).unref();
      }, idleTimeoutMs);
    }
  });
}

/** A request closed before its body ended: as node:http's ECONNRESET (answerRefusal answers nobody). */
const clientGone = () => Object.assign(new Error('the request closed before its body ended'), { code: 'ECONNRESET' });

const tooLarge = (maxBytes: number) =>
  new TesseraError('PAYLOAD_TOO_LARGE', `PUT /images takes bodies up to ${maxBytes} bytes; use the chunked upload for larger images.`);

const describe = (image: ImageRow) => ({
  name: image.name,
  size: image.size,
  sha256: image.sha256,
  contentType: image.contentType,
  createdAt: new Date(image.createdAt).toISOString(),
});

export function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
  res
    .writeHead(status, {
      ...headers,
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    })
    .end(body);
}
