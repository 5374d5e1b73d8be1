// The one table of error codes: each code's HTTP status and default message, shared by the
// GraphQL layer (extensions.code) and the REST routes (GET /images/{name}). Domain errors are
// plain errors here: the HTTP edge (src/http/graphql-errors.ts) turns them into GraphQL errors.

export const ERROR_CODES = {
  BAD_USER_INPUT: { status: 400, message: 'The input is malformed.' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The image is larger than the configured maximum.' },
  IMAGE_NOT_FOUND: { status: 404, message: 'No stored image has that name.' },
  IMAGE_ALREADY_EXISTS: { status: 409, message: 'The name belongs to a stored image or an open upload.' },
  UPLOAD_NOT_FOUND: { status: 404, message: 'No open upload has that id.' },
  INVALID_FRAGMENT: { status: 400, message: 'The fragment index or size is not the expected one.' },
  CHECKSUM_MISMATCH: { status: 400, message: 'The given SHA-256 differs from the bytes received.' },
  UPLOAD_INCOMPLETE: { status: 409, message: 'Fragments are missing.' },
  INSUFFICIENT_DATANODES: { status: 503, message: 'Fewer live datanodes than the replication factor.' },
  IMAGE_UNAVAILABLE: { status: 503, message: 'A fragment has no readable, verified replica.' },
  UNAUTHENTICATED: { status: 401, message: 'This call needs a valid token: `Authorization: Bearer <token>`.' },
  // Beyond the contract: client tokens, roles, signed URLs and quotas (src/auth).
  FORBIDDEN: { status: 403, message: "The token's role does not allow this operation." },
  SIGNED_URL_INVALID: { status: 403, message: 'The signed URL is malformed, altered, or its token was revoked.' },
  SIGNED_URL_EXPIRED: { status: 403, message: 'The signed URL has expired.' },
  QUOTA_EXCEEDED: { status: 429, message: "The token's quota is used up." },
  RATE_LIMITED: { status: 429, message: 'Too many requests for this token; retry later.' },
  // Beyond the contract: datanode administration.
  DATANODE_NOT_FOUND: { status: 404, message: 'No datanode has that id.' },
  DATANODE_NOT_DRAINED: { status: 409, message: 'The datanode still holds replicas; drain it first.' },
  // HTTP-level refusals, so every error body carries a code (GraphQL-over-HTTP and RFC 9110 statuses).
  BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  NOT_FOUND: { status: 404, message: 'Nothing is served at this path.' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'This path does not answer that method.' },
  LENGTH_REQUIRED: { status: 411, message: 'This path reads a body only with a Content-Length header.' },
  NOT_ACCEPTABLE: { status: 406, message: 'None of the media types in Accept can be served.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body has a media type this path does not read.' },
  RANGE_NOT_SATISFIABLE: { status: 416, message: 'The requested range starts past the end of the image.' },
  INTERNAL_SERVER_ERROR: { status: 500, message: 'The coordinator failed to answer; the cause is in its log.' },
  // Beyond the contract: requests a web page on another origin could have sent (http/cross-site.ts).
  CSRF_HEADER_REQUIRED: { status: 403, message: 'A request a browser can send cross-site needs the CSRF-prevention header.' },
  // Beyond the contract: the limits that keep one request from taking the coordinator down.
  QUERY_TOO_COMPLEX: { status: 400, message: 'The query exceeds a limit on its size, depth, aliases or cost.' },
  SERVER_BUSY: { status: 503, message: 'The coordinator is at its memory budget; retry later.' },
  TOO_MANY_SUBSCRIPTIONS: { status: 429, message: 'This connection has as many subscriptions as it may.' },
  REQUEST_TIMEOUT: { status: 408, message: 'The request body stopped arriving.' },
  METADATA_UNAVAILABLE: { status: 503, message: 'The metadata database did not answer in time; retry later or on another coordinator.' },
  CLUSTER_NOT_READY: { status: 503, message: 'The coordinator does not know the cluster id yet (no datanode would obey); retry shortly.' },
  INDEX_REBUILDING: { status: 503, message: "The index is being rebuilt from the datanodes' records; try again shortly." },
  // Beyond the contract: images as images (src/renditions).
  CONTENT_TYPE_MISMATCH: { status: 400, message: 'The declared contentType contradicts the bytes, which are an image of another format.' },
  NOT_AN_IMAGE: { status: 415, message: 'Renditions are made of PNG, JPEG, WebP, GIF, AVIF, TIFF or SVG images only.' },
  IMAGE_TOO_LARGE: { status: 413, message: 'The image has more pixels than renditions may decode.' },
  RENDITION_NOT_ALLOWED: { status: 400, message: 'The rendition parameters are outside the allowed sizes, fits, formats or qualities.' },
  RENDITION_BUSY: { status: 503, message: 'Too many renditions are waiting; retry later.' },
  RENDITION_TIMEOUT: { status: 503, message: 'The rendition took longer than allowed.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * An error raised on purpose: GraphQL shows it with `extensions.code` (and any `extra` fields),
 * REST with its status. `extensions` is what graphql-js copies onto the error it locates.
 */
export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly extensions: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string = ERROR_CODES[code].message, extra: Record<string, unknown> = {}) {
    super(message);
    this.extensions = { code, ...extra };
    this.name = 'TesseraError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
  }
}

export const badInput = (message: string) => new TesseraError('BAD_USER_INPUT', message);

/** The JSON body REST routes answer for an error. */
export const errorBody = (err: TesseraError) => JSON.stringify({ code: err.code, message: err.message });
