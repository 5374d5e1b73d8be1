// The image records kept on the datanodes: manifests written before an upload is
// acknowledged, tombstones before a delete is, and the cluster-wide view of them (merged from
// every datanode) that the index rebuild and the reconciler read.
import type { Logger } from 'pino';
import type { ImageManifest, ImageTombstone, RecordListing } from '../shared/datanode-api.ts';
import { TesseraError } from '../errors.ts';
import type { FragmentRow, ImageRow } from '../metadata/catalog.ts';
import type { DatanodeClient } from './datanode-client.ts';
import { placeReplicas } from './placement.ts';
import { createTombstoneQueue, tombstoneTargets } from './tombstone-queue.ts';
import type { Registry } from './registry.ts';

/** The manifest of a stored image (or of one about to be) from its index rows. */
export function manifestOf(
  image: Pick<ImageRow, 'imageKey' | 'name' | 'size' | 'contentType' | 'fragmentSize'>,
  sha256: string,
  createdAt: number,
  fragments: Pick<FragmentRow, 'id' | 'idx' | 'size' | 'sha256'>[],
): ImageManifest {
  return {
    kind: 'manifest',
    image: image.imageKey,
    name: image.name,
    size: image.size,
    contentType: image.contentType,
    sha256,
    createdAt,
    fragmentSize: image.fragmentSize,
    fragments: [...fragments].sort((a, b) => a.idx - b.idx).map((f) => ({ index: f.idx, size: f.size, sha256: f.sha256, id: f.id })),
  };
}

/** What every datanode that answered holds, merged. */
export interface ClusterRecords {
  /** Manifests with no tombstone anywhere, by image key. */
  live: Map<string, ImageManifest>;
  /** Keys of deleted images. */
  tombstoned: Map<string, ImageTombstone>;
  /** Fragment id -> key of the live manifest referencing it. */
  liveFragments: Map<string, string>;
  /** Fragment id -> key of the deleted image whose (dead) manifest references it. */
  deadFragments: Map<string, string>;
  /** Datanode ids whose records were read, and those that could not be (DOWN, error). */
  read: string[];
  unread: string[];
}

export function mergeRecords(listings: RecordListing[]): Pick<ClusterRecords, 'live' | 'tombstoned' | 'liveFragments' | 'deadFragments'> {
  const tombstoned = new Map<string, ImageTombstone>();
  for (const l of listings) for (const t of l.tombstones) if (!tombstoned.has(t.image)) tombstoned.set(t.image, t);
  const live = new Map<string, ImageManifest>();
  // One image's manifest is rewritten only when its fragments changed before completion: the newest is the one.
  for (const l of listings) {
    for (const m of l.manifests) {
      const have = live.get(m.image);
      if (!tombstoned.has(m.image) && (!have || m.createdAt > have.createdAt)) live.set(m.image, m);
    }
  }
  const liveFragments = new Map<string, string>();
  for (const m of live.values()) for (const f of m.fragments) liveFragments.set(f.id, m.image);
  const deadFragments = new Map<string, string>();
  for (const l of listings)
    for (const m of l.manifests) if (tombstoned.has(m.image)) for (const f of m.fragments) deadFragments.set(f.id, m.image);
  return { live, tombstoned, liveFragments, deadFragments };
}

/** What writing image records needs. */
interface RecordWriter {
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
  replicationFactor: number;
}

/**
 * Writes the manifest to the live datanodes among `holders` (those holding its fragments),
 * then to others until `replicationFactor` hold it. INSUFFICIENT_DATANODES when fewer could.
 */
async function writeManifest(
  { registry, client, log, replicationFactor }: RecordWriter,
  manifest: ImageManifest,
  holders: Iterable<string>,
): Promise<string[]> {
  const url = (id: string) => registry.get(id)!.url;
  const written: string[] = [];
  const tried = new Set<string>();
  let targets = [...new Set(holders)].filter((id) => registry.isLive(id));
  while (targets.length > 0) {
    for (const t of targets) tried.add(t);
    const results = await Promise.allSettled(targets.map((id) => client.putRecord(url(id), manifest)));
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') written.push(targets[i]);
      else
        log.warn({ datanode: targets[i], image: manifest.image, err: r.reason?.message }, 'manifest write failed; trying another datanode');
    });
    if (written.length >= replicationFactor) break;
    targets = placeReplicas(manifest.image, registry.all(), replicationFactor - written.length, tried);
  }
  if (written.length < replicationFactor) {
    throw new TesseraError(
      'INSUFFICIENT_DATANODES',
      `The image's manifest reached ${written.length} of the ${replicationFactor} datanodes it needs; try again.`,
    );
  }
  return written;
}

/** Reads and merges the records of every registered datanode that answers. */
async function readAllRecords(registry: Registry, client: DatanodeClient): Promise<ClusterRecords> {
  const nodes = registry.all();
  const answers = await Promise.allSettled(nodes.map((n) => client.listRecords(n.url)));
  const listings: RecordListing[] = [];
  const read: string[] = [];
  const unread: string[] = [];
  answers.forEach((a, i) => {
    if (a.status === 'fulfilled') {
      listings.push(a.value);
      read.push(nodes[i].id);
    } else unread.push(nodes[i].id);
  });
  return { ...mergeRecords(listings), read, unread };
}

export function createImageRecords({ registry, client, log, replicationFactor }: RecordWriter) {
  const url = (id: string) => registry.get(id)!.url;
  /**
   * Images this process tombstoned: key -> when the tombstone reached a datanode, undefined
   * while it is still queued. A rebuild pass whose reading of the records came before the
   * tombstone landed must not add its image back (soak: a re-check racing deleteImage).
   */
  const tombstonedHere = new Map<string, number | undefined>();
  const tombstones = createTombstoneQueue({
    log,
    targets: (holders) => tombstoneTargets(registry, holders),
    put: (id, tombstones) => client.deleteBatch(url(id), { tombstones, fragments: [] }),
    delivered: (key) => tombstonedHere.set(key, Date.now()),
  });

  function remember(imageKey: string, deliveredAt: number | undefined) {
    tombstonedHere.set(imageKey, deliveredAt);
    // Bounded when no pass runs for long: an hour is far past any pass's reading.
    if (tombstonedHere.size > 10_000)
      for (const [key, at] of tombstonedHere) if (at !== undefined && at < Date.now() - 3_600_000) tombstonedHere.delete(key);
  }

  return {
    /** True when this process deleted the image (its tombstone may postdate a pass's reading). */
    tombstonedHere: (imageKey: string) => tombstonedHere.has(imageKey),
    /** Forgets deletions whose tombstones landed before `before`: every later reading of the records holds them. */
    forgetTombstonedBefore(before: number) {
      for (const [key, at] of tombstonedHere) if (at !== undefined && at < before) tombstonedHere.delete(key);
    },
    /**
     * Writes the manifest to the live datanodes among `holders` (those holding its fragments),
     * then to others until `replicationFactor` hold it. INSUFFICIENT_DATANODES when fewer could.
     */
    writeManifest: (manifest: ImageManifest, holders: Iterable<string>): Promise<string[]> =>
      writeManifest({ registry, client, log, replicationFactor }, manifest, holders),

    /**
     * Writes the tombstone to every live datanode (at least the replication factor's worth are
     * wanted). INSUFFICIENT_DATANODES when none took it: then nothing was deleted. Fewer than
     * the factor is logged; the deletions of the image's files carry the tombstone to their
     * datanodes too.
     */
    async writeTombstone(imageKey: string, deletedAt: number): Promise<number> {
      const tombstone: ImageTombstone = { kind: 'tombstone', image: imageKey, deletedAt };
      remember(imageKey, undefined);
      const targets = registry.live().map((n) => n.id);
      const results = await Promise.allSettled(targets.map((id) => client.putRecord(url(id), tombstone)));
      const written = results.filter((r) => r.status === 'fulfilled').length;
      remember(imageKey, Date.now());
      if (written === 0)
        throw new TesseraError('INSUFFICIENT_DATANODES', 'No live datanode took the deletion record; nothing was deleted.');
      if (written < replicationFactor)
        log.warn(
          { image: imageKey, written, wanted: replicationFactor },
          'tombstone written to fewer datanodes than the replication factor',
        );
      return written;
    },

    /**
     * For a deletion already durable in the index, whose queued replica-file deletions tombstone
     * the image on every datanode holding its files: the tombstone also goes, in the background,
     * to the live datanodes that hold none of them (so that a manifest written there stays dead).
     */
    queueTombstone(imageKey: string, deletedAt: number, holders: Iterable<string>): void {
      remember(imageKey, undefined);
      tombstones.push({ kind: 'tombstone', image: imageKey, deletedAt }, new Set(holders));
    },
    /** Resolves once the queued tombstones went out (or failed for now): a clean stop waits for it. */
    flushTombstones: () => tombstones.flush(),

    /** Reads and merges the records of every registered datanode that answers. */
    readAll: (): Promise<ClusterRecords> => readAllRecords(registry, client),
  };
}

export type ImageRecords = ReturnType<typeof createImageRecords>;
