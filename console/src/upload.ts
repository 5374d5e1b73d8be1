// Uploads from the browser with the CLI's chunked protocol: beginUpload, each missing fragment as
// a multipart uploadFragment (with its SHA-256 where the page may hash), completeUpload. Open
// uploads are remembered in localStorage by file (name, size, modification time): after a reload,
// dropping the same file again sends only the fragments the coordinator has not got.
import type { UploadSession } from '../../src/client/types.ts';
import { ApiError, gql, gqlWithFile } from './api.ts';
import { BEGIN_UPLOAD, COMPLETE_UPLOAD, UPLOAD_FRAGMENT, UPLOAD_SESSION } from './queries.ts';

type Session = Omit<UploadSession, 'expiresAt'>;

/** An upload this browser started and has not completed (what the ledger keeps). */
export interface OpenUpload {
  key: string;
  uploadId: string;
  name: string;
  size: number;
  startedAt: string;
}

export interface Progress {
  bytesDone: number;
  totalBytes: number;
  resumed: boolean;
}

const LEDGER = 'tessera.uploads';
/** Fragments in flight per file: enough to fill the link, few enough to keep memory small. */
const PARALLEL = 3;

const fileKey = (file: File) => `${file.name}\u0000${file.size}\u0000${file.lastModified}`;

export function openUploads(): OpenUpload[] {
  try {
    return JSON.parse(localStorage.getItem(LEDGER) ?? '[]') as OpenUpload[];
  } catch {
    return [];
  }
}

function remember(entry: OpenUpload | undefined, forgetKey: string) {
  const rest = openUploads().filter((u) => u.key !== forgetKey);
  localStorage.setItem(LEDGER, JSON.stringify(entry ? [...rest, entry] : rest));
}

/** The open session of an earlier attempt at this file, if the coordinator still has it. */
async function earlierSession(file: File): Promise<Session | undefined> {
  const entry = openUploads().find((u) => u.key === fileKey(file));
  if (!entry) return undefined;
  const { upload } = await gql<{ upload: Session | null }>(UPLOAD_SESSION, { id: entry.uploadId });
  if (upload && upload.name === file.name && upload.size === file.size) return upload;
  remember(undefined, entry.key); // completed, aborted or expired: start over
  return undefined;
}

async function sha256Hex(blob: Blob): Promise<string | undefined> {
  // crypto.subtle exists only in secure contexts (https, localhost): elsewhere the coordinator
  // still verifies every replica it writes, only this end-to-end check is skipped.
  if (!globalThis.crypto?.subtle) return undefined;
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Sends the fragments the session lacks, PARALLEL at a time, reporting bytes as they go. */
async function sendMissing(file: File, session: Session, report: (bytes: number) => void, signal: AbortSignal) {
  const received = new Set(session.receivedFragments);
  const missing = Array.from({ length: session.fragmentCount }, (_, i) => i).filter((i) => !received.has(i));
  const stored = (i: number) => Math.min(session.fragmentSize, file.size - i * session.fragmentSize);
  let done = [...received].reduce((sum, i) => sum + stored(i), 0);
  const inFlight = new Map<number, number>();
  const update = () => report(done + [...inFlight.values()].reduce((a, b) => a + b, 0));
  update();
  const worker = async () => {
    for (let index = missing.shift(); index !== undefined; index = missing.shift()) {
      const blob = file.slice(index * session.fragmentSize, index * session.fragmentSize + stored(index));
      const sha256 = await sha256Hex(blob);
      const onSent = (bytes: number) => {
        // Multipart framing is counted too: never show more than the fragment.
        inFlight.set(index!, Math.min(bytes, blob.size));
        update();
      };
      await gqlWithFile(UPLOAD_FRAGMENT, { uploadId: session.id, index, sha256 }, blob, onSent, signal);
      inFlight.delete(index);
      done += blob.size;
      update();
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, missing.length) }, worker));
}

/** Uploads (or resumes) one file as an image named after it; resolves with the image's name. */
export async function uploadFile(file: File, onProgress: (p: Progress) => void, signal: AbortSignal): Promise<string> {
  if (file.size < 1) throw new ApiError(`${file.name} is empty.`, 'BAD_USER_INPUT');
  const key = fileKey(file);
  let session = await earlierSession(file);
  const resumed = session !== undefined;
  if (!session) {
    const input = { name: file.name, size: file.size, contentType: file.type || undefined };
    session = (await gql<{ beginUpload: Session }>(BEGIN_UPLOAD, { input })).beginUpload;
    remember({ key, uploadId: session.id, name: file.name, size: file.size, startedAt: new Date().toISOString() }, key);
  }
  await sendMissing(file, session, (bytesDone) => onProgress({ bytesDone, totalBytes: file.size, resumed }), signal);
  const { completeUpload } = await gql<{ completeUpload: { name: string } }>(COMPLETE_UPLOAD, { uploadId: session.id });
  remember(undefined, key);
  return completeUpload.name;
}
