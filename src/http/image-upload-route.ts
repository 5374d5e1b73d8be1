// PUT /images/{name}: the whole image as the raw request body, stored as uploadImage stores it,
// as an object store's PUT does (S3, Swift). On plain node:http, like GET /images/{name}: a small
// image skips the GraphQL layer (Yoga's request objects, multipart parsing, parse/validate/execute),
// which cost the coordinator as much CPU per 100 KB image as storing it does.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TesseraError } from '../errors.ts';
import type { Auth } from '../auth/service.ts';
import { authorizeChange } from '../auth/image-access.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import type { BodyBudget } from '../memory-budget.ts';
import { assertImageName } from '../names.ts';
import type { Uploads } from '../uploads.ts';
import { IMAGE_PATH_PREFIX, imagePath } from '../image-paths.ts';
import { answerRefusal, readBody, send } from './raw-body.ts';
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
    send(res, 201, JSON.stringify(describe(image)), { location: imagePath(image.name) });
  } catch (err) {
    answerRefusal(req, res, err);
  }
}

async function storeUpload(req: IncomingMessage, path: string, { auth, uploads, maxBytes, budget, idleTimeoutMs }: ImageUploadDeps) {
  const name = imageNameOf(path.slice(IMAGE_PATH_PREFIX.length));
  await authorizeChange(auth, req, 'PUT /images/{name}');
  assertImageName(name);
  // As DELETE: a query would read as a rendition or a signed URL, neither of which is stored.
  if ((req.url ?? '').includes('?')) throw new TesseraError('BAD_USER_INPUT', 'PUT /images/{name} takes no query parameters.');
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(maxBytes);
  const body = { held: 0 };
  try {
    const chunks = await readBody(req, maxBytes, budget, idleTimeoutMs, body, tooLarge);
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

const tooLarge = (maxBytes: number) =>
  new TesseraError('PAYLOAD_TOO_LARGE', `PUT /images takes bodies up to ${maxBytes} bytes; use the chunked upload for larger images.`);

const describe = (image: ImageRow) => ({
  name: image.name,
  size: image.size,
  sha256: image.sha256,
  contentType: image.contentType,
  createdAt: new Date(image.createdAt).toISOString(),
});
