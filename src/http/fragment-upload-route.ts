// PUT /uploads/{id}/fragments/{index}: one fragment of a chunked upload as the raw request body,
// its SHA-256 in X-Content-SHA256, stored as uploadFragment stores it. The twin of
// uploadFragment(file:) without the GraphQL layer (Yoga's request objects, multipart parsing,
// parse/validate/execute), which cost the coordinator about a third more CPU per MB uploaded.
// The same rule (a write token), rate limit, size checks, body budget and idle timeout; a page on
// another origin cannot send it (PUT is never CORS-simple, and no preflight is answered).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TesseraError } from '../errors.ts';
import { authorizeChange } from '../auth/image-access.ts';
import { CONTENT_SHA256_HEADER } from '../shared/datanode-api.ts';
import { assertSha256 } from '../uploads/upload-checks.ts';
import type { ImageUploadDeps } from './image-upload-route.ts';
import { answerRefusal, readBody, send } from './raw-body.ts';

const UPLOADS_PATH_PREFIX = '/uploads/';
const FRAGMENT_PATH = /^\/uploads\/([^/]+)\/fragments\/([^/]+)$/;
const ROUTE = 'PUT /uploads/{id}/fragments/{index}';

export type FragmentUploadDeps = Omit<ImageUploadDeps, 'maxBytes'>;

/** Whether the path is under /uploads/ (this route answers every method there). */
export const isFragmentUploadPath = (path: string) => path.startsWith(UPLOADS_PATH_PREFIX);

/** Answers a request under /uploads/: 200 with the fragment's receipt as JSON, or {code, message}. */
export async function handleFragmentUpload(req: IncomingMessage, res: ServerResponse, path: string, deps: FragmentUploadDeps) {
  try {
    const m = FRAGMENT_PATH.exec(path);
    if (!m) throw new TesseraError('NOT_FOUND', `No route at ${path.slice(0, 200)}; fragments go to ${ROUTE}.`);
    if (req.method !== 'PUT') {
      // Not even OPTIONS: a preflight answered without CORS headers keeps every other origin out.
      throw new TesseraError('METHOD_NOT_ALLOWED', `/uploads/{id}/fragments/{index} answers PUT only.`, {
        http: { headers: { allow: 'PUT' } },
      });
    }
    const receipt = await storeFragment(req, m[1], m[2], deps);
    send(res, 200, JSON.stringify(receipt));
  } catch (err) {
    answerRefusal(req, res, err);
  }
}

function uploadIdOf(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new TesseraError('BAD_USER_INPUT', 'The upload id is not valid percent-encoding.');
  }
}

async function storeFragment(
  req: IncomingMessage,
  idSegment: string,
  indexSegment: string,
  { auth, uploads, budget, idleTimeoutMs }: FragmentUploadDeps,
) {
  await authorizeChange(auth, req, ROUTE);
  if ((req.url ?? '').includes('?')) throw new TesseraError('BAD_USER_INPUT', `${ROUTE} takes no query parameters.`);
  if (!/^(?:0|[1-9]\d{0,8})$/.test(indexSegment))
    throw new TesseraError('BAD_USER_INPUT', 'The fragment index must be a whole number (0 to fragmentCount - 1).');
  const index = Number(indexSegment);
  const sha256 = req.headers[CONTENT_SHA256_HEADER];
  if (Array.isArray(sha256)) throw new TesseraError('BAD_USER_INPUT', `Send ${CONTENT_SHA256_HEADER} once.`);
  assertSha256(sha256, CONTENT_SHA256_HEADER);
  const uploadId = uploadIdOf(idSegment);
  // As S3's UploadPart: the size is declared, so a wrong one is refused before a byte is read
  // and node:http never reads past it (a chunked body could only be cut off mid-way).
  const declared = req.headers['content-length'];
  if (declared === undefined) throw new TesseraError('LENGTH_REQUIRED', `${ROUTE} needs Content-Length (the fragment's size).`);
  const upload = await uploads.openUpload(uploadId);
  uploads.assertFragmentSize(upload, index, Number(declared));
  const body = { held: 0 };
  try {
    const chunks = await readBody(req, Number(declared), budget, idleTimeoutMs, body);
    uploads.assertFragmentSize(upload, index, body.held);
    const { size, sha256: stored, replicas } = await uploads.putFragment(uploadId, index, chunks, sha256, upload);
    return { index, size, sha256: stored, replicas };
  } finally {
    // The chunks stay in memory until the replicas are written: so does their charge.
    budget.release(body.held);
  }
}
