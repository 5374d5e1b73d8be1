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
  /** GET: every image record this datanode holds (manifests and tombstones). */
  records: '/records',
  /** PUT: one record (a manifest or a tombstone), durable before the answer. */
  record: (kind: RecordKind, image: string) => `/records/${kind}/${image}`,
  /** POST: many tombstones and fragment deletions in one request (DeletionBatch), one journal sync for all. */
  deletions: '/deletions',
} as const;

// ---- Image records: what the index knows about an image, kept beside its bytes. ----

/** An image's identity: random, never reused (a name is, after a delete). Same pattern as fragment ids. */
export const isImageKey = (key: string): boolean => FRAGMENT_ID_PATTERN.test(key);

export type RecordKind = 'manifest' | 'tombstone';

/** A stored image as the index knows it: enough to rebuild its rows (replica places come from listings). */
export interface ImageManifest {
  kind: 'manifest';
  /** The image's id (its key), not its name. */
  image: string;
  name: string;
  size: number;
  contentType: string;
  sha256: string;
  /** ms since the epoch: on a rebuild the newest manifest of a name wins. */
  createdAt: number;
  fragmentSize: number;
  fragments: { index: number; size: number; sha256: string; id: string }[];
}

/** The image `image` was deleted: its manifest is dead wherever it is, its fragments may go. */
export interface ImageTombstone {
  kind: 'tombstone';
  image: string;
  deletedAt: number;
}

export type ImageRecord = ImageManifest | ImageTombstone;

/** What `GET /records` answers. */
export interface RecordListing {
  manifests: ImageManifest[];
  tombstones: ImageTombstone[];
}

/**
 * On a fragment PUT: a manifest (base64url JSON) recorded, durably, together with the fragment
 * (a one-fragment image costs no second request).
 */
export const MANIFEST_HEADER = 'x-tessera-manifest';
/**
 * On a fragment DELETE: the fragment belongs to this deleted image. The datanode records the
 * tombstone, then deletes; without it, a fragment a live manifest here references is refused.
 */
export const DELETED_IMAGE_HEADER = 'x-tessera-deleted-image';
/** On a fragment DELETE: why. `surplus-replica` (a copy beyond the replication factor) may remove a referenced fragment. */
export const DELETE_REASON_HEADER = 'x-tessera-delete-reason';
export const SURPLUS_REPLICA = 'surplus-replica';

export const encodeManifestHeader = (m: ImageManifest) => Buffer.from(JSON.stringify(m), 'utf8').toString('base64url');

const MAX_RECORD_FRAGMENTS = 1 << 20;

/** The record in `value` if it is a well-formed one, else undefined: nothing unchecked is stored. */
export function parseRecord(value: unknown): ImageRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  const nat = (v: unknown, min = 0) => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
  const str = (v: unknown, max = 1024) => typeof v === 'string' && v.length > 0 && v.length <= max;
  if (typeof r.image !== 'string' || !isImageKey(r.image)) return undefined;
  if (r.kind === 'tombstone') {
    if (!nat(r.deletedAt)) return undefined;
    return { kind: 'tombstone', image: r.image, deletedAt: r.deletedAt as number };
  }
  if (r.kind !== 'manifest') return undefined;
  if (!str(r.name) || !nat(r.size, 1) || !str(r.contentType, 255) || typeof r.sha256 !== 'string' || !SHA256_HEX_PATTERN.test(r.sha256))
    return undefined;
  if (
    !nat(r.createdAt) ||
    !nat(r.fragmentSize, 1) ||
    !Array.isArray(r.fragments) ||
    r.fragments.length === 0 ||
    r.fragments.length > MAX_RECORD_FRAGMENTS
  )
    return undefined;
  const fragments: ImageManifest['fragments'] = [];
  for (const [i, f] of (r.fragments as unknown[]).entries()) {
    const x = f as Record<string, unknown>;
    if (
      typeof f !== 'object' ||
      f === null ||
      x.index !== i ||
      !nat(x.size, 1) ||
      typeof x.sha256 !== 'string' ||
      !SHA256_HEX_PATTERN.test(x.sha256) ||
      typeof x.id !== 'string' ||
      !isFragmentId(x.id)
    )
      return undefined;
    fragments.push({ index: i, size: x.size as number, sha256: x.sha256, id: x.id });
  }
  return {
    kind: 'manifest',
    image: r.image,
    name: r.name as string,
    size: r.size as number,
    contentType: r.contentType as string,
    sha256: r.sha256,
    createdAt: r.createdAt as number,
    fragmentSize: r.fragmentSize as number,
    fragments,
  };
}

// ---- Batched deletions: POST /deletions. ----

/** One fragment to delete, with the proof a single DELETE /fragments/{id} would carry in its headers. */
export interface FragmentDeletion {
  id: string;
  /** Why (logged; `surplus-replica` may remove a fragment a live manifest here references). */
  reason?: string;
  /** The deleted image the fragment belonged to: its tombstone is recorded before the file goes. */
  deletedImage?: string;
}

/**
 * The body of `POST /deletions`, sent with its X-Content-SHA256 (so the request's signature
 * covers it). The datanode records the tombstones (and those the deletions carry) durably, in
 * one journal sync, then deletes each fragment exactly as `DELETE /fragments/{id}` would.
 */
export interface DeletionBatch {
  tombstones: ImageTombstone[];
  fragments: FragmentDeletion[];
}

/** `deleted` (also when it was absent) or `in-use` (a live manifest here references it: FRAGMENT_IN_USE). */
export type DeletionOutcome = 'deleted' | 'in-use';

/** What `POST /deletions` answers (200): one outcome per fragment, in the request's order. */
export interface DeletionBatchAnswer {
  fragments: DeletionOutcome[];
}

/** At most this many tombstones plus fragments in one batch. */
export const MAX_DELETION_BATCH = 1024;

/** The batch in `value` if it is a well-formed one, else undefined: nothing unchecked is acted on. */
export function parseDeletionBatch(value: unknown): DeletionBatch | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const b = value as Record<string, unknown>;
  if (!Array.isArray(b.tombstones) || !Array.isArray(b.fragments)) return undefined;
  if (b.tombstones.length + b.fragments.length > MAX_DELETION_BATCH) return undefined;
  const tombstones: ImageTombstone[] = [];
  for (const t of b.tombstones as unknown[]) {
    const record = parseRecord(t);
    if (record?.kind !== 'tombstone') return undefined;
    tombstones.push(record);
  }
  const fragments: FragmentDeletion[] = [];
  for (const f of b.fragments as unknown[]) {
    if (typeof f !== 'object' || f === null) return undefined;
    const x = f as Record<string, unknown>;
    if (typeof x.id !== 'string' || !isFragmentId(x.id)) return undefined;
    if (x.reason !== undefined && (typeof x.reason !== 'string' || x.reason.length > 64)) return undefined;
    if (x.deletedImage !== undefined && (typeof x.deletedImage !== 'string' || !isImageKey(x.deletedImage))) return undefined;
    fragments.push({ id: x.id, reason: x.reason as string | undefined, deletedImage: x.deletedImage as string | undefined });
  }
  return { tombstones, fragments };
}

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
  INVALID_RECORD: 400,
  /** A POST /deletions body that is not a well-formed DeletionBatch: nothing in it was acted on. */
  INVALID_DELETION_BATCH: 400,
  /** DELETE of a fragment a live manifest on this datanode references, without proof the image was deleted. */
  FRAGMENT_IN_USE: 409,
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
  /** x-tessera-fence is not a fencing token (a decimal integer). */
  INVALID_FENCE: 400,
  /** A write or delete from a coordinator's background work under a fencing token older than one seen: its sender lost the lease. */
  STALE_FENCE: 409,
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
