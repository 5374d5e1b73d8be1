// Rebuilds (or re-checks) the index from the image records on the datanodes: every
// live manifest becomes a stored image with the replicas the datanodes list, every tombstone
// removes its image, and of two live manifests of one name the newest wins. Idempotent: run on
// an empty index (a lost coordinator disk), on a stale one (a restored backup), or on a current
// one (then it changes nothing).
import type { Logger } from 'pino';
import type { ImageManifest } from '../shared/datanode-api.ts';
import type { Catalog } from '../metadata/catalog.ts';
import type { DatanodeClient } from './datanode-client.ts';
import { manifestOf, type ImageRecords } from './image-records.ts';
import type { Registry } from './registry.ts';
import { isRenditionName } from '../renditions/cache-names.ts';

export interface RebuildReport {
  /** Live manifests and tombstones found on the datanodes. */
  manifests: number;
  tombstones: number;
  /** Stored images added to the index from their manifests. */
  added: number;
  /** Uploads whose manifest was written but whose completion the index never recorded. */
  completed: number;
  /** Images of the index removed because the datanodes hold their tombstone (or a newer image of the name). */
  removed: number;
  /** Older manifests of a reused name: tombstoned (the name was deleted, then reused). */
  superseded: number;
  /** Stored images of the index with no manifest on the datanodes: kept, and their manifests written. */
  backfilled: number;
  /** Fragments of added images that no datanode listed (the image cannot be read until one returns). */
  fragmentsWithoutReplica: number;
  /** Registered datanodes that could not be read (DOWN): what only they hold was not seen. */
  unreadDatanodes: string[];
  ms: number;
}

const PROGRESS_EVERY_MS = 2000;

/** The newer of two manifests of one name: later createdAt, then the larger key (any fixed order will do). */
const newer = (a: ImageManifest, b: ImageManifest) => a.createdAt > b.createdAt || (a.createdAt === b.createdAt && a.image > b.image);

/** Longer than any tombstone write (the datanode client's 30 s request timeout), with margin. */
const TOMBSTONE_WRITE_BOUND_MS = 120_000;

export function createIndexRebuild({ catalog, registry, client, records, log, now = Date.now }: {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  records: ImageRecords;
  log: Logger;
  now?: () => number;
}) {
  let running: Promise<RebuildReport> | undefined;

  /** `startup`: nothing is served yet, so an open upload is no completion in flight. */
  async function pass(why: string, startup: boolean): Promise<RebuildReport> {
    const started = now();
    log.info({ why }, 'index rebuild: reading the records and fragment listings of every datanode');
    const cluster = await records.readAll();
    const report: RebuildReport = {
      manifests: cluster.live.size,
      tombstones: cluster.tombstoned.size,
      added: 0,
      completed: 0,
      removed: 0,
      superseded: 0,
      backfilled: 0,
      fragmentsWithoutReplica: 0,
      unreadDatanodes: cluster.unread,
      ms: 0,
    };
    if (cluster.unread.length > 0) log.warn({ datanodes: cluster.unread }, 'index rebuild: some datanodes could not be read; what only they hold is not seen now (re-checked when they return)');

    // Where each fragment is: (datanode, size) pairs from the listings of the datanodes read.
    const holders = new Map<string, { datanodeId: string; size: number }[]>();
    await Promise.all(
      cluster.read.map(async (datanodeId) => {
        const listing = await client.listFragments(registry.get(datanodeId)!.url).catch(() => undefined);
        if (!listing) return void report.unreadDatanodes.push(datanodeId);
        for (const f of listing) {
          const list = holders.get(f.id);
          if (list) list.push({ datanodeId, size: f.size });
          else holders.set(f.id, [{ datanodeId, size: f.size }]);
        }
      }),
    );

    // 1. Deleted since: images of the index whose tombstone the datanodes hold.
    for (const key of cluster.tombstoned.keys()) {
      const image = catalog.imageByKey(key);
      if (image && catalog.deleteImage(image.id, now(), 'image-deleted')) {
        report.removed += 1;
        log.info({ name: image.name, image: key }, 'index rebuild: removed an image the datanodes record as deleted');
      }
    }

    // 2. The newest live manifest of each name wins; older ones are of a name deleted and reused.
    const winners = new Map<string, ImageManifest>();
    const losers: ImageManifest[] = [];
    for (const m of cluster.live.values()) {
      const w = winners.get(m.name);
      if (!w) winners.set(m.name, m);
      else if (newer(m, w)) {
        losers.push(w);
        winners.set(m.name, m);
      } else losers.push(m);
    }

    // Inserts go in batches, one transaction each: one sync per batch, not per image.
    type Insert = Parameters<Catalog['insertRebuiltImage']>;
    let batch: { m: ImageManifest; args: Insert }[] = [];
    const flush = () => {
      const current = batch;
      batch = [];
      catalog.inTransaction(() => {
        for (const { m, args } of current) {
          if (catalog.insertRebuiltImage(...args)) report.added += 1;
          else log.warn({ name: m.name, image: m.image }, 'index rebuild: could not add an image (its name or a fragment id is taken)');
        }
      });
    };
    let done = 0;
    let lastProgress = now();
    for (const m of winners.values()) {
      done += 1;
      if (now() - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = now();
        log.info({ done, of: winners.size, added: report.added }, 'index rebuild: progress');
      }
      const known = catalog.imageByKey(m.image);
      if (known?.state === 'stored') continue;
      if (records.tombstonedHere(m.image)) continue; // deleted while this pass ran: read before its tombstone
      // Deleted in the index, its tombstone still on its way with the deletions of its files.
      if (!known && m.fragments.some((f) => catalog.deletionTargetsOf(f.id).length > 0)) continue;
      if (known && !startup) continue; // its completeUpload is under way: it records the image itself
      if (known) {
        // The manifest was written, the coordinator stopped before recording the completion.
        const ids = catalog.fragments(known.id).map((f) => f.id);
        if (ids.length === m.fragments.length && ids.every((id, i) => id === m.fragments[i].id) && catalog.completeUpload(known.id, ids, m.sha256, m.createdAt) === 'done') {
          report.completed += 1;
          continue;
        }
        catalog.deleteImage(known.id, now(), 'upload-aborted'); // its fragments differ: the manifest's are the truth
      }
      const holder = catalog.imageHoldingName(m.name);
      if (holder) {
        if (holder.state === 'stored' && holder.createdAt >= m.createdAt) {
          losers.push(m); // the index holds a newer image of the name
          continue;
        }
        // An older image of the name (its tombstone lost) or an upload of a stale index: the manifest wins.
        if (holder.state === 'stored') await records.writeTombstone(holder.imageKey, now()).catch(() => undefined);
        catalog.deleteImage(holder.id, now(), holder.state === 'stored' ? 'image-deleted' : 'upload-aborted');
        report.removed += 1;
      }
      const fragments = m.fragments.map((f) => {
        const replicas = (holders.get(f.id) ?? []).filter((h) => h.size === f.size).map((h) => h.datanodeId);
        if (replicas.length === 0) report.fragmentsWithoutReplica += 1;
        return { id: f.id, idx: f.index, size: f.size, sha256: f.sha256, replicas };
      });
      batch.push({ m, args: [{ imageKey: m.image, name: m.name, size: m.size, contentType: m.contentType, sha256: m.sha256, fragmentSize: m.fragmentSize, createdAt: m.createdAt }, fragments] });
      if (batch.length >= 500) flush();
    }
    flush();

    // 3. A name deleted and reused leaves the older manifest live only if its tombstone was lost: restore it.
    for (const m of losers) {
      if (catalog.imageByKey(m.image)) continue;
      await records.writeTombstone(m.image, now()).then(
        () => (report.superseded += 1),
        () => undefined,
      );
    }

    // 4. Stored images the datanodes know nothing of (stored before manifests existed, or their
    //    manifests lost): kept, and made self-describing now.
    for (const image of catalog.storedImages()) {
      if (cluster.live.has(image.imageKey) || cluster.tombstoned.has(image.imageKey) || !image.sha256) continue;
      // A cached rendition has no manifest on purpose: a rebuild from the datanodes drops it.
      if (isRenditionName(image.name)) continue;
      const fragments = catalog.fragments(image.id);
      const manifest = manifestOf(image, image.sha256, image.createdAt, fragments);
      await records.writeManifest(manifest, fragments.flatMap((f) => catalog.replicasOf(f.id))).then(
        () => (report.backfilled += 1),
        (err: Error) => log.warn({ name: image.name, err: err.message }, 'index rebuild: could not write the manifest of an indexed image'),
      );
    }

    // A tombstone write takes at most a request timeout: older ones were in what this pass read.
    records.forgetTombstonedBefore(started - TOMBSTONE_WRITE_BOUND_MS);
    report.ms = now() - started;
    if (report.fragmentsWithoutReplica > 0) log.warn({ fragments: report.fragmentsWithoutReplica }, 'index rebuild: fragments with no replica on any datanode read');
    log.info(report, 'index rebuild: done');
    return report;
  }

  return {
    /** Runs a pass (or joins the one under way). */
    run(why: string, { startup = false }: { startup?: boolean } = {}): Promise<RebuildReport> {
      running ??= pass(why, startup).finally(() => (running = undefined));
      return running;
    },
    get running() {
      return running !== undefined;
    },
    /** Resolves once no pass runs (shutdown). */
    idle: () => (running ?? Promise.resolve()).then(() => undefined, () => undefined),
  };
}

export type IndexRebuild = ReturnType<typeof createIndexRebuild>;
