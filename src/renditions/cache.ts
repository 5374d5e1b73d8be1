// The rendition cache, kept in the cluster itself: each rendition is a one-fragment image under
// a reserved name (cache-names.ts), replicated, repaired and scrubbed like any image but never
// given a manifest on the datanodes (an index rebuild drops it: a cache is disposable). Bounded
// by a byte budget, least-recently served first out; deleting an image deletes its renditions
// (catalog.deleteImage).
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { sha256Hex } from '../bytes.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import type { RenditionRow } from '../metadata/renditions.ts';
import type { AsyncRenditionTable as RenditionTable } from '../metadata/store.ts';
import type { Replicas } from '../cluster/replicas.ts';
import type { ReplicaDeleter } from '../cluster/replica-deletions.ts';
import { releaseIntents } from '../cluster/intent-release.ts';
import { newFragmentId } from '../uploads/put-fragment.ts';
import { renditionName } from './cache-names.ts';
import type { Rendered } from './render.ts';

/** A hit refreshes its last use at most this often: serving stays a read, not a write per request. */
const TOUCH_EVERY_MS = 10_000;
/** A rendition being written is an open upload for this long at most (then the sweeper drops it). */
const WRITE_TTL_MS = 10 * 60_000;
/** The cache's bytes are summed from the index at least this often (see `bound` below). */
const RESUM_EVERY_MS = 10_000;

export interface CachedRendition {
  image: ImageRow;
  row: RenditionRow;
}

/** What writing a rendition to the cluster needs. */
interface RenditionWriter {
  catalog: Catalog;
  table: RenditionTable;
  replicas: Replicas;
  deleter: ReplicaDeleter;
  replicationFactor: number;
  log: Logger;
  now: () => number;
}

/** Writes the bytes to the datanodes and records them; false when the source went meanwhile. */
async function writeRendition(
  writer: RenditionWriter,
  source: ImageRow,
  variant: string,
  rendered: Rendered,
  contentType: string,
): Promise<boolean> {
  const { catalog, table, replicas, deleter, replicationFactor, now } = writer;
  const t = now();
  const size = rendered.data.length;
  const upload = await catalog.insertUpload({
    name: renditionName(source.imageKey, variant),
    uploadId: randomBytes(12).toString('base64url'),
    size,
    contentType,
    sha256: null,
    fragmentSize: size,
    fragmentCount: 1,
    createdAt: t,
    expiresAt: t + WRITE_TTL_MS,
    width: rendered.width,
    height: rendered.height,
    mediaChecked: 1,
  });
  const fragmentId = newFragmentId();
  const digest = sha256Hex(rendered.data);
  let placed: string[] = [];
  let done = false;
  try {
    placed = await replicas.write(fragmentId, rendered.data, digest, replicationFactor, new Set());
    // Fragment recorded, upload completed and rendition row inserted: one transaction.
    done = await table.completeRendition(
      { id: fragmentId, imageId: upload.id, imageKey: upload.imageKey, idx: 0, size, sha256: digest },
      placed,
      digest,
      now(),
      {
        renditionImageId: upload.id,
        sourceImageId: source.id,
        variant,
        size,
        width: rendered.width,
        height: rendered.height,
        lastUsedAt: now(),
      },
    );
  } finally {
    if (!done) {
      // Retried until the database takes it (never rejects): an intent left would cover the
      // copies until the restart, and the upload row still goes.
      await releaseIntents(writer, fragmentId, placed);
      await catalog.deleteImage(upload.id, now(), 'upload-aborted');
      void deleter.kick();
    }
  }
  return done;
}

export function createRenditionCache({
  catalog,
  table,
  replicas,
  deleter,
  replicationFactor,
  budgetBytes,
  log,
  now = Date.now,
}: {
  catalog: Catalog;
  table: RenditionTable;
  replicas: Replicas;
  deleter: ReplicaDeleter;
  replicationFactor: number;
  budgetBytes: number;
  log: Logger;
  now?: () => number;
}) {
  // Never below the cache's real size: the index's sum when last read plus what was written here
  // since (evictions and purges with their image only take bytes away). Summing the index reads
  // every rendition row, some 2-3 ms in a full cache of 25,000: done once the bound passes the
  // budget, not on every write, and at least every RESUM_EVERY_MS, so that renditions other
  // coordinators write are counted too.
  let bound: { bytes: number; at: number } | undefined;

  /** Evicts least recently served renditions while over the budget; `added`: bytes just cached. */
  async function evict(added = 0): Promise<number> {
    if (bound) {
      bound.bytes += added;
      if (bound.bytes <= budgetBytes && now() - bound.at < RESUM_EVERY_MS) return 0;
    }
    let evicted = 0;
    let freed = 0;
    let { bytes } = await table.totals();
    while (bytes > budgetBytes) {
      const [oldest] = await table.leastRecent(1);
      if (!oldest) break;
      await catalog.deleteImage(oldest.renditionImageId, now(), 'rendition-evicted');
      bytes -= oldest.size;
      freed += oldest.size;
      evicted += 1;
    }
    bound = { bytes, at: now() };
    if (evicted > 0) {
      // Cached renditions are remade on demand: over the budget, the least recently served go.
      log.info({ evicted, freedBytes: freed, budgetBytes }, 'renditions evicted over the cache budget');
      void deleter.kick();
    }
    return evicted;
  }

  const write = (source: ImageRow, variant: string, rendered: Rendered, contentType: string) =>
    writeRendition({ catalog, table, replicas, deleter, replicationFactor, log, now }, source, variant, rendered, contentType);

  return {
    /** The cached rendition, its last use refreshed; undefined on a miss. */
    async get(source: ImageRow, variant: string): Promise<CachedRendition | undefined> {
      if (budgetBytes === 0) return undefined;
      const row = await table.find(source.id, variant);
      const image = row && (await catalog.imageById(row.renditionImageId));
      if (!row || !image || image.state !== 'stored') return undefined;
      if (now() - row.lastUsedAt >= TOUCH_EVERY_MS) await table.touch(row.renditionImageId, now());
      return { image, row };
    },

    /** Stores a fresh rendition (never failing the request that made it), then keeps to the budget. */
    async put(source: ImageRow, variant: string, rendered: Rendered, contentType: string): Promise<void> {
      if (budgetBytes === 0 || rendered.data.length > budgetBytes) return;
      try {
        if (await write(source, variant, rendered, contentType)) await evict(rendered.data.length);
      } catch (err) {
        log.warn({ image: source.name, variant, err: (err as Error).message }, 'rendition not cached');
      }
    },

    evict,
    totals: () => table.totals(),
  };
}

export type RenditionCache = ReturnType<typeof createRenditionCache>;
