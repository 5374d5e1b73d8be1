// The datanode's wire protocol: the one definition of paths, headers and ids that both the
// datanode and the coordinator's datanode client import.

/** A fragment id: also the file name on the datanode, so the pattern is strict. */
export const FRAGMENT_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

export const isFragmentId = (id: string): boolean => FRAGMENT_ID_PATTERN.test(id);

/** Lowercase hex SHA-256 of a fragment's bytes, sent on PUT and answered on GET. */
export const CONTENT_SHA256_HEADER = 'x-content-sha256';

export const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;

export const paths = {
  health: '/health',
  fragments: '/fragments',
  fragment: (id: string) => `/fragments/${id}`,
} as const;

/** What `GET /health` answers. */
export interface DatanodeHealthReport {
  /**
   * Stable id of the datanode's data dir (beyond the contract): the same disks at any URL.
   * Only in answers to an authenticated request, with `clusterId` and `proof` (request-signing.ts).
   */
  nodeId?: string;
  /** The cluster this datanode has joined; null before it has joined one. */
  clusterId?: string | null;
  /** HMAC(secret, nonce, nodeId, clusterId): the identity is the datanode's, not claimed by another server. */
  proof?: string;
  cpuPercent: number;
  memoryPercent: number;
  diskPercent: number;
  diskFreeBytes: number;
  fragmentCount: number;
  storedBytes: number;
}

/** One entry of `GET /fragments`. */
export interface FragmentListing {
  id: string;
  size: number;
}

export const bearer = (secret: string) => `Bearer ${secret}`;

/**
 * Every error a datanode answers on purpose, with its HTTP status: one table so the datanode
 * and the coordinator's client agree on what a status means (a 400 may be a bad id or a
 * checksum mismatch; the code tells them apart).
 */
export const datanodeErrorStatus = {
  UNAUTHENTICATED: 401,
  INVALID_FRAGMENT_ID: 400,
  INVALID_CHECKSUM_HEADER: 400,
  CHECKSUM_MISMATCH: 400,
  PAYLOAD_TOO_LARGE: 413,
  FRAGMENT_NOT_FOUND: 404,
  /** The request named another node id (x-tessera-node): this URL now serves other disks. */
  WRONG_NODE: 409,
  /** The request came from a coordinator of another cluster (x-tessera-cluster). */
  WRONG_CLUSTER: 409,
  /** A signed write or delete without a cluster id: the coordinator has not established its identity. */
  CLUSTER_ID_REQUIRED: 409,
  /** The fragment's file exists but cannot be read (an I/O error, not a file): a bad replica. */
  FRAGMENT_UNREADABLE: 500,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  HEALTH_UNAVAILABLE: 503,
  INTERNAL: 500,
} as const;

export type DatanodeErrorCode = keyof typeof datanodeErrorStatus;

/** The JSON body of every datanode error answer. */
export interface DatanodeErrorBody {
  code: DatanodeErrorCode;
  message: string;
}
