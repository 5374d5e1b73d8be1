// Rebuilds (or re-checks) the index from the image records on the datanodes: every
// live manifest becomes a stored image with the replicas the datanodes list, every tombstone
// removes its image, and of two live manifests of one name the newest wins. Idempotent: run on
// an empty index (a lost coordinator disk), on a stale one (a restored backup), or on a current
// one (then it changes nothing).
import type { Logger } from 'pino';
import type { ImageManifest } from '../shared/datanode-api.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import type { DatanodeClient } from './datanode-client.ts';
import { manifestOf, type ClusterRecords, type ImageRecords } from './image-records.ts';
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

interface RebuildDeps {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  records: ImageRecords;
  log: Logger;
  now: () => number;
}

/** Where each fragment is: (datanode, size) pairs from the listings of the datanodes read. */
type Holders = Map<string, { datanodeId: string; size: number }[]>;

/** What adding manifests works from: where the fragments are, and the report it fills in. */
interface PassInput {
  holders: Holders;
  report: RebuildReport;
  /** Nothing is served yet (start-up), so an open upload is no completion in flight. */
  startup: boolean;
}

/** The fragment listings of the datanodes whose records were read; one that does not answer joins the unread. */
async function readHolders({ registry, client }: RebuildDeps, cluster: ClusterRecords, report: RebuildReport): Promise<Holders> {
  const holders: Holders = new Map();
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
  return holders;
}

/** 1. Deleted since: images of the index whose tombstone the datanodes hold. */
async function removeTombstoned({ catalog, log, now }: RebuildDeps, cluster: ClusterRecords, report: RebuildReport): Promise<void> {
  for (const key of cluster.tombstoned.keys()) {
    const image = await catalog.imageByKey(key);
    if (image && (await catalog.deleteImage(image.id, now(), 'image-deleted'))) {
      report.removed += 1;
      log.info({ name: image.name, image: key }, 'index rebuild: removed an image the datanodes record as deleted');
    }
  }
}

/** 2a. The newest live manifest of each name wins; older ones are of a name deleted and reused. */
function newestByName(live: Iterable<ImageManifest>): { winners: Map<string, ImageManifest>; losers: ImageManifest[] } {
  const winners = new Map<string, ImageManifest>();
  const losers: ImageManifest[] = [];
  for (const m of live) {
    const w = winners.get(m.name);
    if (!w) winners.set(m.name, m);
    else if (newer(m, w)) {
      losers.push(w);
      winners.set(m.name, m);
    } else losers.push(m);
  }
  return { winners, losers };
}

/** Whether a winning manifest is none of this pass's business: stored already, deleted meanwhile, or being completed. */
async function leaveAlone(
  { catalog, records }: RebuildDeps,
  m: ImageManifest,
  known: ImageRow | undefined,
  startup: boolean,
): Promise<boolean> {
  if (known?.state === 'stored') return true;
  if (records.tombstonedHere(m.image)) return true; // deleted while this pass ran: read before its tombstone
  // Deleted in the index, its tombstone still on its way with the deletions of its files.
  if (!known) for (const f of m.fragments) if ((await catalog.deletionTargetsOf(f.id)).length > 0) return true;
  return known !== undefined && !startup; // its completeUpload is under way: it records the image itself
}

/**
 * An upload whose manifest was written but whose completion the coordinator did not record
 * before it stopped: completed now (true), or dropped when its fragments differ from the
 * manifest's (the manifest's are the truth; the image is then added from it).
 */
async function completeInterrupted({ catalog, now }: RebuildDeps, known: ImageRow, m: ImageManifest): Promise<boolean> {
  const ids = (await catalog.fragments(known.id)).map((f) => f.id);
  if (
    ids.length === m.fragments.length &&
    ids.every((id, i) => id === m.fragments[i].id) &&
    (await catalog.completeUpload(known.id, ids, m.sha256, m.createdAt)) === 'done'
  )
    return true;
  await catalog.deleteImage(known.id, now(), 'upload-aborted');
  return false;
}

/**
 * Frees the manifest's name in the index for it; false when the index holds a newer image of
 * the name (the manifest then lost). An older stored image of the name (its tombstone lost) is
 * tombstoned and removed, as is an upload of a stale index.
 */
async function takeName({ catalog, records, now }: RebuildDeps, m: ImageManifest, report: RebuildReport): Promise<boolean> {
  const holder = await catalog.imageHoldingName(m.name);
  if (!holder) return true;
  if (holder.state === 'stored' && holder.createdAt >= m.createdAt) return false;
  if (holder.state === 'stored') await records.writeTombstone(holder.imageKey, now()).catch(() => undefined);
  await catalog.deleteImage(holder.id, now(), holder.state === 'stored' ? 'image-deleted' : 'upload-aborted');
  report.removed += 1;
  return true;
}

type Insert = Parameters<Catalog['insertRebuiltImage']>;

/** The index rows of a manifest, its replicas the listed files of the right size. */
function rowsOf(m: ImageManifest, holders: Holders, report: RebuildReport): Insert {
  const fragments = m.fragments.map((f) => {
    const replicas = (holders.get(f.id) ?? []).filter((h) => h.size === f.size).map((h) => h.datanodeId);
    if (replicas.length === 0) report.fragmentsWithoutReplica += 1;
    return { id: f.id, idx: f.index, size: f.size, sha256: f.sha256, replicas };
  });
  return [
    {
      imageKey: m.image,
      name: m.name,
      size: m.size,
      contentType: m.contentType,
      sha256: m.sha256,
      fragmentSize: m.fragmentSize,
      createdAt: m.createdAt,
    },
    fragments,
  ];
}

/** Inserts in batches, one transaction each: one sync per batch, not per image. */
function batchInserter({ catalog, log }: RebuildDeps, report: RebuildReport) {
  let batch: { m: ImageManifest; args: Insert }[] = [];
  const flush = async () => {
    const current = batch;
    batch = [];
    if (current.length === 0) return;
    const added = await catalog.insertRebuiltImages(current.map(({ args: [image, fragments] }) => ({ image, fragments })));
    current.forEach(({ m }, i) => {
      if (added[i]) report.added += 1;
      else log.warn({ name: m.name, image: m.image }, 'index rebuild: could not add an image (its name or a fragment id is taken)');
    });
  };
  return {
    async add(m: ImageManifest, args: Insert) {
      batch.push({ m, args });
      if (batch.length >= 500) await flush();
    },
    flush,
  };
}

/** 2b. Each winning manifest the index lacks becomes a stored image; one that loses to the index joins `losers`. */
async function addWinners(
  deps: RebuildDeps,
  { holders, report, startup }: PassInput,
  winners: Map<string, ImageManifest>,
  losers: ImageManifest[],
): Promise<void> {
  const { catalog, log, now } = deps;
  const inserter = batchInserter(deps, report);
  let done = 0;
  let lastProgress = now();
  for (const m of winners.values()) {
    done += 1;
    if (now() - lastProgress >= PROGRESS_EVERY_MS) {
      lastProgress = now();
      log.info({ done, of: winners.size, added: report.added }, 'index rebuild: progress');
    }
    const known = await catalog.imageByKey(m.image);
    if (await leaveAlone(deps, m, known, startup)) continue;
    if (known && (await completeInterrupted(deps, known, m))) {
      report.completed += 1;
      continue;
    }
    if (!(await takeName(deps, m, report))) {
      losers.push(m); // the index holds a newer image of the name
      continue;
    }
    await inserter.add(m, rowsOf(m, holders, report));
  }
  await inserter.flush();
}

/** 3. A name deleted and reused leaves the older manifest live only if its tombstone was lost: restore it. */
async function restoreTombstones({ catalog, records, now }: RebuildDeps, losers: ImageManifest[], report: RebuildReport): Promise<void> {
  for (const m of losers) {
    if (await catalog.imageByKey(m.image)) continue;
    await records.writeTombstone(m.image, now()).then(
      () => (report.superseded += 1),
      () => undefined,
    );
  }
}

/**
 * 4. Stored images the datanodes know nothing of (stored before manifests existed, or their
 * manifests lost): kept, and made self-describing now.
 */
async function backfillManifests({ catalog, records, log }: RebuildDeps, cluster: ClusterRecords, report: RebuildReport): Promise<void> {
  for (const image of await catalog.storedImages()) {
    if (cluster.live.has(image.imageKey) || cluster.tombstoned.has(image.imageKey) || !image.sha256) continue;
    // A cached rendition has no manifest on purpose: a rebuild from the datanodes drops it.
    if (isRenditionName(image.name)) continue;
    const fragments = await catalog.fragments(image.id);
    const manifest = manifestOf(image, image.sha256, image.createdAt, fragments);
    await records.writeManifest(manifest, (await Promise.all(fragments.map((f) => catalog.replicasOf(f.id)))).flat()).then(
      () => (report.backfilled += 1),
      (err: Error) => log.warn({ name: image.name, err: err.message }, 'index rebuild: could not write the manifest of an indexed image'),
    );
  }
}

function emptyReport(cluster: ClusterRecords): RebuildReport {
  return {
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
}

/** One whole rebuild: read what the datanodes hold, then steps 1 to 4. */
async function rebuildPass(deps: RebuildDeps, why: string, startup: boolean): Promise<RebuildReport> {
  const { records, log, now } = deps;
  const started = now();
  log.info({ why }, 'index rebuild: reading the records and fragment listings of every datanode');
  const cluster = await records.readAll();
  const report = emptyReport(cluster);
  if (cluster.unread.length > 0)
    log.warn(
      { datanodes: cluster.unread },
      'index rebuild: some datanodes could not be read; what only they hold is not seen now (re-checked when they return)',
    );
  const holders = await readHolders(deps, cluster, report);
  await removeTombstoned(deps, cluster, report);
  const { winners, losers } = newestByName(cluster.live.values());
  await addWinners(deps, { holders, report, startup }, winners, losers);
  await restoreTombstones(deps, losers, report);
  await backfillManifests(deps, cluster, report);
  // A tombstone write takes at most a request timeout: older ones were in what this pass read.
  records.forgetTombstonedBefore(started - TOMBSTONE_WRITE_BOUND_MS);
  report.ms = now() - started;
  if (report.fragmentsWithoutReplica > 0)
    log.warn({ fragments: report.fragmentsWithoutReplica }, 'index rebuild: fragments with no replica on any datanode read');
  log.info(report, 'index rebuild: done');
  return report;
}

export function createIndexRebuild({ now = Date.now, ...rest }: Omit<RebuildDeps, 'now'> & { now?: () => number }) {
  const deps: RebuildDeps = { ...rest, now };
  let running: Promise<RebuildReport> | undefined;

  return {
    /** Runs a pass (or joins the one under way). */
    run(why: string, { startup = false }: { startup?: boolean } = {}): Promise<RebuildReport> {
      running ??= rebuildPass(deps, why, startup).finally(() => (running = undefined));
      return running;
    },
    get running() {
      return running !== undefined;
    },
    /** Resolves once no pass runs (shutdown). */
    idle: () =>
      (running ?? Promise.resolve()).then(
        () => undefined,
        () => undefined,
      ),
  };
}

export type IndexRebuild = ReturnType<typeof createIndexRebuild>;
