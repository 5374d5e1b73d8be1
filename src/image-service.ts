// The image service: stored images' lookup, listing, deletion, and reading their bytes back from the datanodes
// (in order, with read-ahead, every fragment verified) for fragmentData and GET /images/{name}.
import type { Logger } from 'pino';
import { sliceBytes } from './bytes.ts';
import { TesseraError } from './errors.ts';
import type { EventBus } from './events.ts';
import type { FragmentWithReplicas, ImageRow } from './metadata/catalog.ts';
import type { AsyncCatalog as Catalog } from './metadata/store.ts';
import type { BadReplica, Replicas } from './cluster/replicas.ts';
import type { ReplicaDeleter } from './cluster/replica-deletions.ts';
import { createByteSemaphore, FRAGMENT_DATA_BUDGET_BYTES, FRAGMENT_DATA_WAIT_MS } from './memory-budget.ts';
import type { ImageRecords } from './cluster/image-records.ts';
import { isRenditionName } from './renditions/cache-names.ts';

export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 50;

/** Fragments fetched ahead of the one being sent: bounds a download's memory to (1 + this) fragments. */
const READ_AHEAD = 3;

export const encodeCursor = (name: string) => Buffer.from(name, 'utf8').toString('base64url');
export function decodeCursor(cursor: string): string {
  const name = Buffer.from(cursor, 'base64url').toString('utf8');
  if (cursor === '' || encodeCursor(name) !== cursor)
    throw new TesseraError('BAD_USER_INPUT', `"${cursor}" is not a cursor from this listing.`);
  return name;
}

/**
 * The bytes [start, end] (inclusive) of an image, one verified fragment (as the chunks it
 * arrived in, trimmed to the range) at a time, in order, fetching up to READ_AHEAD fragments
 * ahead. The first fragment is fetched before the generator is returned, so an unreadable
 * start fails before any header is sent.
 */
async function readRange(
  { catalog, replicas, reportBad }: { catalog: Catalog; replicas: Replicas; reportBad: (bad: BadReplica) => void },
  image: ImageRow,
  start: number,
  end: number,
  { hashed = true } = {},
): Promise<AsyncGenerator<Buffer[]>> {
  const first = Math.floor(start / image.fragmentSize);
  const last = Math.floor(end / image.fragmentSize);
  // Only the rows of the fragments in the range (by index), not the whole image's.
  const fragments = await catalog.fragmentsInRange(image.id, first, last);
  if (fragments.length !== last - first + 1) throw new TesseraError('IMAGE_NOT_FOUND', `"${image.name}" was deleted meanwhile.`);
  const pending: Promise<Buffer[]>[] = [];
  let nextToFetch = first;
  const fetchMore = () => {
    while (nextToFetch <= last && pending.length <= READ_AHEAD) {
      const p = replicas.readChunks(fragments[nextToFetch - first], reportBad, { hashed });
      p.catch(() => {}); // awaited in order below; a failure ends the stream there
      pending.push(p);
      nextToFetch += 1;
    }
  };
  fetchMore();
  const head = await pending[0];
  async function* chunks(): AsyncGenerator<Buffer[]> {
    for (let i = first; i <= last; i++) {
      const data = i === first ? head : await pending[0];
      void pending.shift(); // the promise just awaited
      fetchMore();
      const offset = i * image.fragmentSize;
      yield sliceBytes(data, Math.max(start - offset, 0), end - offset + 1);
    }
  }
  return chunks();
}

/** One page of the stored images, by name, with its cursors. */
async function listPage(
  catalog: Catalog,
  { first, after, prefix }: { first?: number | null; after?: string | null; prefix?: string | null },
) {
  const limit = first ?? DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_PAGE) {
    throw new TesseraError('BAD_USER_INPUT', `first must be from 0 to ${MAX_PAGE} (got ${limit}).`);
  }
  const afterName = after != null ? decodeCursor(after) : undefined;
  const rows = await catalog.listImages({ first: limit + 1, after: afterName, prefix: prefix ?? undefined });
  const page = rows.slice(0, limit);
  return {
    edges: page.map((node) => ({ cursor: encodeCursor(node.name), node })),
    // An empty page (first: 0, a count query) has no cursor to continue from, so it claims
    // no next page: hasNextPage true with a null endCursor would leave a client looping.
    pageInfo: {
      hasNextPage: page.length > 0 && rows.length > limit,
      endCursor: page.length > 0 ? encodeCursor(page[page.length - 1].name) : null,
    },
    prefix: prefix ?? undefined,
  };
}

export function createImageService({
  catalog,
  replicas,
  records,
  deleter,
  events,
  log,
  onBadReplica,
  now = Date.now,
}: {
  catalog: Catalog;
  replicas: Replicas;
  records: ImageRecords;
  deleter: ReplicaDeleter;
  events: EventBus;
  log: Logger;
  onBadReplica?: (bad: BadReplica) => void;
  now?: () => number;
}) {
  // fragmentData holds a whole fragment (then its base64) per call: all calls share one budget.
  const fragmentBytes = createByteSemaphore(FRAGMENT_DATA_BUDGET_BYTES);
  const reportBad = (bad: BadReplica) => {
    log.warn(bad, 'replica could not serve a verified copy');
    onBadReplica?.(bad);
  };

  async function require(name: string): Promise<ImageRow> {
    const image = isRenditionName(name) ? undefined : await catalog.imageByName(name);
    if (!image) throw new TesseraError('IMAGE_NOT_FOUND', `No stored image is named "${name}".`);
    return image;
  }

  return {
    // A cached rendition is an image of its own, under a name no user can give: never found by name.
    find: async (name: string) => (isRenditionName(name) ? undefined : catalog.imageByName(name)),
    require,

    list: (query: { first?: number | null; after?: string | null; prefix?: string | null }) => listPage(catalog, query),
    /** Stored images under `prefix` (all of them without one). */
    count: (prefix?: string | null) => catalog.countImages(prefix ?? undefined),
    /** Stored images and their bytes (one copy). */
    totals: () => catalog.totals(),
    /** An image's fragments in order, with the datanodes holding each. */
    fragments: (image: ImageRow) => catalog.fragmentsWithReplicas(image.id),

    /**
     * Durable in the index before it answers: the image's row goes and the deletion of each of
     * its replica files is queued in the same transaction, each one tombstoning the image on its
     * datanode before the file goes; the other live datanodes get the tombstone in the
     * background. Until the first of those lands (at once for a lone delete; during a burst of
     * deletes within TOMBSTONE_ROUNDS.maxDelayMs, ~25 ms, of the previous round, plus the round in
     * flight; or until a holder is live again) the index alone knows of the deletion, and under
     * synchronous=NORMAL only in its WAL until the checkpoint thread syncs it (about a second):
     * a power failure, or a rebuild after losing the coordinator's disk, in that window brings
     * the image back. Replica files go only after the tombstone is journalled on their datanode.
     */
    async delete(name: string): Promise<boolean> {
      if (isRenditionName(name)) return false;
      // Sent with the deletion's own transaction: no coordinator hears of it before the ImageStored it follows.
      const notice = events.notice({ kind: 'ImageDeleted', message: `Image "${name}" deleted.`, name });
      const at = now();
      // One transaction finds, deletes and queues: no look-up before it, no re-read after.
      const deleted = await catalog.deleteStoredImage(name, at, notice);
      if (!deleted) return false;
      records.queueTombstone(deleted.imageKey, at, deleted.holders);
      log.info({ image: name }, 'image deleted');
      events.committed(notice);
      void deleter.kick();
      return true;
    },

    /** One verified fragment of a stored image. */
    async fragment(name: string, index: number): Promise<{ fragment: FragmentWithReplicas; data: Buffer }> {
      const image = await require(name);
      if (!Number.isInteger(index) || index < 0 || index >= image.fragmentCount) {
        throw new TesseraError('INVALID_FRAGMENT', `Fragment index ${index} is outside 0..${image.fragmentCount - 1}.`);
      }
      const [fragment] = await catalog.fragmentsInRange(image.id, index, index);
      if (!fragment) throw new TesseraError('IMAGE_NOT_FOUND', `"${name}" was deleted meanwhile.`);
      const release = await fragmentBytes.acquire(fragment.size, FRAGMENT_DATA_WAIT_MS);
      try {
        return { fragment, data: await replicas.read(fragment, reportBad) };
      } finally {
        // Held a moment past the resolver, while the answer is encoded and serialized.
        setTimeout(release, 50);
      }
    },

    /**
     * The bytes [start, end] (inclusive) of an image, verified fragment by fragment (readRange);
     * `hashed: false` checks only each fragment's size, for a caller that checks the sha256 itself.
     */
    readRange: (image: ImageRow, start: number, end: number, options?: { hashed?: boolean }) =>
      readRange({ catalog, replicas, reportBad }, image, start, end, options),
  };
}

export type ImageService = ReturnType<typeof createImageService>;
