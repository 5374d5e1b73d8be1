// The one table of error codes: each code's HTTP status and default message, shared by the
// GraphQL layer (extensions.code) and the REST routes (GET /images/{name}).
import { GraphQLError } from 'graphql';

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
  UNAUTHENTICATED: { status: 401, message: 'This call needs the cluster secret.' },
  // Beyond the contract: datanode administration.
  DATANODE_NOT_FOUND: { status: 404, message: 'No datanode has that id.' },
  DATANODE_NOT_DRAINED: { status: 409, message: 'The datanode still holds replicas; drain it first.' },
  INDEX_REBUILDING: { status: 503, message: 'The index is being rebuilt from the datanodes\' records; try again shortly.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error raised on purpose: GraphQL shows it with `extensions.code`, REST with its status. */
export class TesseraError extends GraphQLError {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string = ERROR_CODES[code].message, extra: Record<string, unknown> = {}) {
    super(message, { extensions: { code, ...extra } });
    this.name = 'TesseraError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
  }
}

export const badInput = (message: string) => new TesseraError('BAD_USER_INPUT', message);

/** The JSON body REST routes answer for an error. */
export const errorBody = (err: TesseraError) => JSON.stringify({ code: err.code, message: err.message });
