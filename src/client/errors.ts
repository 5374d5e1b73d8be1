// The client's one error type: server codes (extensions.code / the REST body's code) and the
// client's own (network, abort, verification), so callers and the CLI branch on `code` alone.

/** Codes the client raises itself, beside the contract's server codes. */
export type ClientErrorCode =
  | 'NETWORK_ERROR' // the request never got an answer (refused, reset, timed out)
  | 'ABORTED' // the caller's AbortSignal fired
  | 'HTTP_ERROR' // an HTTP answer without a usable GraphQL or JSON error body
  | 'BAD_RESPONSE' // an answer that does not parse as what the contract promises
  | 'SIZE_MISMATCH' // a download's byte count differs from Content-Length / Image.size
  | 'FILE_CHANGED'; // the local file changed while it was being uploaded

export class TesseraClientError extends Error {
  /** extensions.code of a GraphQL error, `code` of a REST error body, or a ClientErrorCode. */
  readonly code: string;
  /** HTTP status of the answer, when there was one. */
  readonly status?: number;
  /** extensions of the GraphQL error (e.g. `missing` for UPLOAD_INCOMPLETE). */
  readonly extensions?: Record<string, unknown>;
  /** The upload this error interrupted; it stays open and resumable. */
  uploadId?: string;

  constructor(
    code: string,
    message: string,
    details: { status?: number; extensions?: Record<string, unknown>; cause?: unknown; uploadId?: string } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'TesseraClientError';
    this.code = code;
    this.status = details.status;
    this.extensions = details.extensions;
    this.uploadId = details.uploadId;
  }
}

/**
 * Errors worth the same request again: the cause may pass (a datanode coming back, a reset
 * socket). A failed call changes nothing, except that a mutation answered with NETWORK_ERROR or
 * METADATA_UNAVAILABLE may have gone through (the answer, or the database's answer to COMMIT,
 * was lost): a retry of one must accept "already done" (upload.ts's retryIdempotent checks).
 * Input errors (BAD_USER_INPUT, INVALID_FRAGMENT, CHECKSUM_MISMATCH, ...) never pass by retrying.
 */
const TRANSIENT = new Set([
  'NETWORK_ERROR',
  'INSUFFICIENT_DATANODES',
  'IMAGE_UNAVAILABLE',
  'METADATA_UNAVAILABLE',
  'CLUSTER_NOT_READY',
  'INTERNAL_SERVER_ERROR',
]);

export function isTransient(err: unknown): boolean {
  if (!(err instanceof TesseraClientError)) return false;
  if (TRANSIENT.has(err.code)) return true;
  // A bare 502/503/504 (a proxy in front, a restarting coordinator) carries no GraphQL code.
  return err.code === 'HTTP_ERROR' && err.status !== undefined && err.status >= 500;
}

export const abortError = (signal?: AbortSignal) =>
  new TesseraClientError(
    'ABORTED',
    signal?.reason instanceof Error && signal.reason.name !== 'AbortError' ? signal.reason.message : 'The operation was aborted.',
  );

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortError(signal);
}

/** Any thrown value as a TesseraClientError (network errors from node:http included). */
export function asClientError(err: unknown, signal?: AbortSignal): TesseraClientError {
  if (err instanceof TesseraClientError) return err;
  if (signal?.aborted) return abortError(signal);
  const e = err as NodeJS.ErrnoException;
  if (e?.name === 'AbortError') return abortError(signal);
  const message = String(e?.message ?? err);
  const detail = e?.code && !message.includes(e.code) ? `${e.code}: ${message}` : message;
  return new TesseraClientError('NETWORK_ERROR', detail, { cause: err });
}
