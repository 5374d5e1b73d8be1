// GET/HEAD /images/{name}: the image's bytes streamed from the datanodes, with ETag, 304 and a
// single byte range (RFC 9110), on plain node:http so large bodies skip the GraphQL layer.
// DELETE /images/{name}: deleteImage as S3 and Swift clients call it (204, or 404 when there is
// no such image), without the GraphQL layer's cost per call. No browser page on another origin
// can send it: DELETE is never a CORS-simple method, and this route answers no preflight (405).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody, TesseraError } from '../errors.ts';
import type { ImageService } from '../image-service.ts';
import { assertImageName } from '../names.ts';
import { CLIENT_CHECKS_HEADER, IMAGE_PATH_PREFIX } from '../image-paths.ts';
import { STORED_FILE_BASE_HEADERS, storedFileHeaders } from './stored-file-headers.ts';
import type { Renditions } from '../renditions/service.ts';
import { serveRendition } from './rendition-route.ts';

/** GET /images answers depend on X-Tessera-Client-Checks (which checks the bytes had before they left). */
const CLIENT_CHECKS_VARY = 'X-Tessera-Client-Checks';

type ByteRange = { start: number; end: number } | 'unsatisfiable' | undefined;

/** The single range of a `Range` header for a body of `size` bytes; undefined serves it whole. */
export function parseRange(header: string | undefined, size: number): ByteRange {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined; // malformed or multi-range: ignored, as RFC 9110 allows
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(size - suffix, 0), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined; // invalid: ignored
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

export const etagMatches = (header: string | undefined, etag: string) =>
  header !== undefined &&
  header.split(',').some((t) => {
    const tag = t.trim().replace(/^W\//, '');
    return tag === '*' || tag === etag;
  });

/**
 * Whether a `Range` may be honoured given `If-Range` (RFC 9110 §13.1.5): only when the validator
 * still names this representation, by strong ETag or by the exact Last-Modified date; a stale
 * one gets the whole image (200), so a client never splices bytes of two versions.
 */
export function ifRangeHolds(header: string | undefined, etag: string, lastModified: string): boolean {
  if (header === undefined) return true;
  const validator = header.trim();
  if (validator.startsWith('"') || validator.startsWith('W/')) return validator === etag; // weak tags never match
  const date = Date.parse(validator);
  return !Number.isNaN(date) && date === Date.parse(lastModified);
}

const headerValue = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

function sendError(res: ServerResponse, err: TesseraError) {
  const body = errorBody(err);
  const extra = (err.extensions.http as { headers?: Record<string, string> } | undefined)?.headers ?? {};
  res.writeHead(err.status, {
    ...STORED_FILE_BASE_HEADERS,
    ...extra,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** Resolves on 'drain' (or 'close', when the client went away), leaving no listener behind. */
export function writable(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Sends a body read fragment by fragment, after its headers; ends or cuts the response. */
export async function sendFragments(res: ServerResponse, chunks: AsyncGenerator<Buffer[]>): Promise<void> {
  try {
    for await (const fragment of chunks) {
      if (res.destroyed) break;
      // One fragment per corked batch: its chunks leave in one writev, not one syscall each.
      res.cork();
      let full = false;
      for (const chunk of fragment) full = !res.write(chunk) || full;
      res.uncork();
      if (full) await writable(res);
    }
    res.end();
  } catch {
    // Headers are gone: cutting the connection is the only honest way to say the body is short.
    res.destroy();
  }
}

/** Who may do what on the image route; each throws a TesseraError (401, 403, 429) when the caller may not. */
export interface ImageRouteAccess {
  /** May read the image `name` (a token or a signed URL). */
  read(name: string): Promise<void>;
  /** May delete images (a write token). */
  delete(): Promise<void>;
}

const ROUTE_METHODS = 'GET, HEAD, PUT, DELETE'; // PUT: image-upload-route.ts, routed before this

/** The image name a path segment percent-encodes (BAD_USER_INPUT when it is not valid UTF-8). */
export function imageNameOf(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new TesseraError('BAD_USER_INPUT', 'The image name is not valid percent-encoded UTF-8.');
  }
}

/** DELETE /images/{name}: the deletion is durable in the index before the 204 (ImageService.delete). */
async function deleteRequest(req: IncomingMessage, res: ServerResponse, images: ImageService, segment: string, access: ImageRouteAccess) {
  const name = imageNameOf(segment);
  await access.delete();
  assertImageName(name);
  // A query would read as a rendition or a signed URL: neither is deleted on its own.
  if ((req.url ?? '').includes('?')) throw new TesseraError('BAD_USER_INPUT', 'DELETE /images/{name} takes no query parameters.');
  if (!(await images.delete(name))) throw new TesseraError('IMAGE_NOT_FOUND', `No stored image is named "${name}".`);
  res.writeHead(204, STORED_FILE_BASE_HEADERS).end();
}

/**
 * Handles the request if it is for /images/…; false when the path is not this route's.
 */
export async function handleImageRequest(
  req: IncomingMessage,
  res: ServerResponse,
  images: ImageService,
  access: ImageRouteAccess,
  renditions?: Renditions,
): Promise<boolean> {
  const path = (req.url ?? '').split('?')[0];
  if (!path.startsWith(IMAGE_PATH_PREFIX)) return false;
  // Everything after the prefix is the name: a '/' may stand unencoded, as in S3 object keys.
  const segment = path.slice(IMAGE_PATH_PREFIX.length);
  if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'DELETE') {
    res.setHeader('allow', ROUTE_METHODS);
    sendError(res, new TesseraError('METHOD_NOT_ALLOWED', `/images/{name} answers ${ROUTE_METHODS} only.`));
    return true;
  }
  try {
    if (req.method === 'DELETE') {
      await deleteRequest(req, res, images, segment, access);
      return true;
    }
    const name = imageNameOf(segment);
    await access.read(name);
    assertImageName(name); // a malformed name is 400, and no error echoes an unbounded one
    const image = await images.require(name);
    const queryAt = (req.url ?? '').indexOf('?');
    const wanted = renditions && queryAt >= 0 ? renditions.paramsFrom(new URLSearchParams(req.url!.slice(queryAt + 1))) : undefined;
    if (wanted) {
      await serveRendition(req, res, image, wanted, renditions!);
      return true;
    }
    const etag = `"${image.sha256}"`;
    const common = {
      ...storedFileHeaders(image.contentType),
      etag,
      'accept-ranges': 'bytes',
      'last-modified': new Date(image.createdAt).toUTCString(),
      // The same URL is verified by the coordinator, or not, depending on this request header:
      // a shared cache must not answer a request without it with a body stored for one with it.
      vary: CLIENT_CHECKS_VARY,
    };
    if (etagMatches(req.headers['if-none-match'], etag)) {
      res.writeHead(304, { ...STORED_FILE_BASE_HEADERS, etag, 'accept-ranges': 'bytes', vary: CLIENT_CHECKS_VARY }).end();
      return true;
    }
    const range = ifRangeHolds(headerValue(req.headers['if-range']), etag, common['last-modified'])
      ? parseRange(req.headers.range, image.size)
      : undefined;
    if (range === 'unsatisfiable') {
      res.setHeader('content-range', `bytes */${image.size}`);
      res.setHeader('accept-ranges', 'bytes');
      sendError(res, new TesseraError('RANGE_NOT_SATISFIABLE', `The range starts past the end of the image (${image.size} bytes).`));
      return true;
    }
    const { start, end } = range ?? { start: 0, end: image.size - 1 };
    const headers = {
      ...common,
      'content-length': end - start + 1,
      ...(range ? { 'content-range': `bytes ${start}-${end}/${image.size}` } : {}),
    };
    if (req.method === 'HEAD') {
      res.writeHead(range ? 206 : 200, headers).end();
      return true;
    }
    // A client that checks the body against the ETag itself spares the coordinator a second hash;
    // never for a range: a partial body cannot be checked against the ETag (the whole image's hash).
    const clientChecks = range === undefined && req.headers[CLIENT_CHECKS_HEADER] === 'sha256';
    const chunks = await images.readRange(image, start, end, { hashed: !clientChecks });
    res.writeHead(range ? 206 : 200, headers);
    await sendFragments(res, chunks);
  } catch (err) {
    if (err instanceof TesseraError) sendError(res, err);
    else {
      // The cause goes to the log (the caller's catch), never to the client.
      if (!res.headersSent) sendError(res, new TesseraError('INTERNAL_SERVER_ERROR'));
      else res.destroy();
      throw err;
    }
  }
  return true;
}
