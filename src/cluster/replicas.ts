// Writing a fragment to R datanodes and reading it back from any verified replica: the two
// halves of the data path every service (uploads, downloads, repair) goes through.
import type { Logger } from 'pino';
import { TesseraError } from '../errors.ts';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import { DatanodeHttpError, isChecksumMismatch, isUnreadable, type DatanodeClient } from './datanode-client.ts';
import { byteLength, sha256Hex, type Bytes } from '../bytes.ts';
import { createReachability, type Reachability } from './reachability.ts';
import { placeReplicas } from './placement.ts';
import { releaseIntents } from './intent-release.ts';
import type { ImageManifest } from '../shared/datanode-api.ts';
import type { Registry } from './registry.ts';
import type { ClusterIdentity } from './cluster-identity.ts';

export { sha256Hex };

/**
 * A replica that could not serve a verified copy: reported so it can be repaired. 'unreadable'
 * (the datanode answered, but its file could not be read: 5xx, I/O error) is repaired like a
 * corrupt one; only 'unreachable' (no answer) is left to the health monitor.
 */
export interface BadReplica {
  fragmentId: string;
  datanodeId: string;
  reason: 'missing' | 'corrupt' | 'unreadable' | 'unreachable';
}

/** See readChunks: long enough that a healthy datanode under load answers first. */
const HEDGE_AFTER_MS = 1000;

export function createReplicas({
  catalog,
  registry,
  client,
  log,
  now = Date.now,
  hedgeAfterMs = HEDGE_AFTER_MS,
  writeHedgeAfterMs = writeHedgeMs,
  reachability = createReachability(),
  clusterIdentity,
}: {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
  now?: () => number;
  /** A read that has not answered after this long is joined by one from the next replica. */
  hedgeAfterMs?: number;
  /** How long a replica write may go unanswered before another datanode is tried (tests shorten it). */
  writeHedgeAfterMs?: (data: Bytes) => number;
  reachability?: Reachability;
  /** Without a known cluster id every datanode refuses a write: writes fail fast instead (absent in tests with fake datanodes). */
  clusterIdentity?: Pick<ClusterIdentity, 'current' | 'require'>;
}) {
  const writeDeps: WriteDeps = { catalog, registry, client, log, now, reachability, hedgeMs: writeHedgeAfterMs, clusterIdentity };
  const replicas = {
    /**
     * Writes `data` to `count` distinct live datanodes (not `exclude`), falling back to other
     * datanodes when one fails. Each target is first recorded as a write intent, so a write
     * that is never recorded (failure or crash) is cleaned from the datanodes later. The caller
     * must record the returned datanodes as replicas (which clears their intents) or release them.
     * `manifest`: recorded by each datanode together with the fragment. `planned`: targets (from
     * place) whose intents the caller recorded already; they are written first, and from the
     * call on this write owns their intents (releases those it does not place).
     */
    write: (
      fragmentId: string,
      data: Bytes,
      sha256: string,
      count: number,
      exclude?: ReadonlySet<string>,
      manifest?: ImageManifest,
      planned?: string[],
    ) => writeReplicas(writeDeps, fragmentId, data, sha256, count, exclude, manifest, planned),

    /**
     * The `count` datanodes a write of `fragmentId` would try first (INSUFFICIENT_DATANODES when
     * fewer can take one, CLUSTER_NOT_READY without a cluster id): a caller records their intents in its own transaction and hands them
     * to write as `planned`.
     */
    async place(fragmentId: string, count: number): Promise<string[]> {
      await clusterReady(writeDeps);
      const targets = placeAvoiding(registry, reachability, fragmentId, count, new Set());
      if (targets.length < count) throw insufficient(count, targets.length);
      return targets;
    },

    /**
     * The fragment's bytes from the first replica that answers them with the indexed hash:
     * live datanodes first, the others as a last resort. IMAGE_UNAVAILABLE when none does.
     */
    async read(fragment: { id: string; sha256: string; replicas: string[] }, onBad?: (bad: BadReplica) => void): Promise<Buffer> {
      const chunks = await readChunks(fragment, onBad);
      return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    },

    /**
     * As read, but the bytes stay the chunks they arrived in: a download streams them on without
     * joining them. `hashed: false` (a client that checks the whole image itself) takes a replica
     * whose datanode reports the indexed hash of the file it read, at the right size, without
     * hashing the bytes again.
     */
    readChunks,
  };
  return replicas;

  function readChunks(fragment: FragmentToRead, onBad?: (bad: BadReplica) => void, { hashed = true } = {}): Promise<Buffer[]> {
    return readFirstVerified({ registry, client, hedgeAfterMs, reachability }, fragment, onBad, hashed);
  }
}

export type Replicas = ReturnType<typeof createReplicas>;

type WriteDeps = {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
  now: () => number;
  reachability: Reachability;
  hedgeMs: (data: Bytes) => number;
  clusterIdentity?: Pick<ClusterIdentity, 'current' | 'require'>;
};

/** CLUSTER_NOT_READY, before any placement, rather than writes every datanode refuses (ending as INSUFFICIENT_DATANODES). */
async function clusterReady({ clusterIdentity }: WriteDeps): Promise<void> {
  if (clusterIdentity && clusterIdentity.current() === undefined) await clusterIdentity.require();
}

const insufficient = (want: number, have: number) =>
  new TesseraError(
    'INSUFFICIENT_DATANODES',
    `Needs ${want} live datanode${want === 1 ? '' : 's'} for the replicas; ${have} could take one.`,
  );

/** See Replicas.write. */
async function writeReplicas(
  deps: WriteDeps,
  fragmentId: string,
  data: Bytes,
  sha256: string,
  count: number,
  exclude: ReadonlySet<string> = new Set(),
  manifest?: ImageManifest,
  planned?: string[],
): Promise<string[]> {
  const { catalog, registry, client, reachability, log } = deps;
  // Planned targets are covered by intents already: attempted from here on, so every way out
  // releases those not placed.
  const attempted: string[] = planned ? [...planned] : [];
  const written: string[] = [];
  // Writes that had no answer within the hedge window: the loop moves on to other datanodes, and
  // comes back to them only when no other is left (or only avoided ones are).
  const late = new Map<string, Promise<boolean>>();
  const put = (id: string) => client.putFragment(registry.get(id)!.url, fragmentId, data, sha256, manifest);
  try {
    await clusterReady(deps);
    for (let first = planned !== undefined; written.length < count; first = false) {
      const want = count - written.length;
      let targets: string[];
      if (first) targets = planned!;
      else {
        targets = placeAvoiding(registry, reachability, fragmentId, want, new Set([...exclude, ...attempted]));
        const avoided = reachability.avoided();
        if (late.size > 0 && (targets.length < want || targets.every((id) => avoided.has(id)))) {
          written.push(...(await firstLanded(late, want)));
          continue;
        }
        if (targets.length < want) throw insufficient(count, written.length + targets.length);
        await catalog.addWriteIntents(fragmentId, targets);
        attempted.push(...targets);
      }
      const round = await writeRound(targets, put, deps.hedgeMs(data), reachability);
      for (const [id, landed] of round.late) late.set(id, landed);
      if (round.mismatch)
        throw new TesseraError('CHECKSUM_MISMATCH', `Fragment ${fragmentId}: the bytes do not hash to ${sha256} (${round.mismatch}).`);
      written.push(...round.written);
      for (const [id, why] of round.failed)
        log.warn({ datanode: id, fragment: fragmentId, err: why }, 'replica write failed; trying another datanode');
    }
  } catch (err) {
    // Nothing is recorded: every copy goes, a late one only once it is over (released before it
    // lands, its file would land with neither intent nor deletion queued).
    await releaseIntents(
      deps,
      fragmentId,
      attempted.filter((d) => !late.has(d)),
    );
    releaseWhenSettled(deps, fragmentId, late);
    throw err;
  }
  // A failed PUT may still have landed (its answer lost): those files are cleaned too; a late
  // one once it is over.
  await releaseIntents(
    deps,
    fragmentId,
    attempted.filter((d) => !written.includes(d) && !late.has(d)),
  );
  releaseWhenSettled(deps, fragmentId, late);
  return written;
}

/** Releases each late write's intent once it is over (landed or not): released earlier, a file landing afterwards would be an orphan. */
function releaseWhenSettled(deps: WriteDeps, fragmentId: string, late: ReadonlyMap<string, Promise<boolean>>) {
  for (const [id, landed] of late) void landed.then(() => releaseIntents(deps, fragmentId, [id]));
}

/**
 * Waits for late writes until `want` of them landed or none is left, whichever answers first
 * (not in order); those it waited for leave `late`, the others stay there to be released.
 */
async function firstLanded(late: Map<string, Promise<boolean>>, want: number): Promise<string[]> {
  const landed: string[] = [];
  while (landed.length < want && late.size > 0) {
    const [id, ok] = await Promise.race([...late].map(([id, p]) => p.then((ok) => [id, ok] as const)));
    late.delete(id);
    if (ok) landed.push(id);
  }
  return landed;
}

/** `want` live datanodes for `key`, avoiding those this coordinator could not reach lately while others can take them. */
function placeAvoiding(registry: Registry, reachability: Reachability, key: string, want: number, exclude: ReadonlySet<string>) {
  const avoided = reachability.avoided();
  const preferred = avoided.size === 0 ? [] : placeReplicas(key, registry.all(), want, new Set([...exclude, ...avoided]));
  return preferred.length === want ? preferred : placeReplicas(key, registry.all(), want, exclude);
}

/**
 * How long a replica write may go unanswered before the write moves on to another datanode: long
 * enough for a healthy datanode under load (3 s, plus the bytes at 8 MiB/s), far below the request
 * deadline a datanode this coordinator cannot reach would make it wait.
 */
export const writeHedgeMs = (data: Bytes) => 3000 + Math.round(byteLength(data) / (8 * 1024 * 1024)) * 1000;

interface Round {
  written: string[];
  /** Still unanswered at the hedge: each resolves to whether it landed in the end. */
  late: Map<string, Promise<boolean>>;
  failed: [string, string][];
  mismatch?: string;
}

/** Writes to every target at once; answers once all have answered, or at `hedgeMs` with the rest late. */
async function writeRound(
  targets: string[],
  put: (id: string) => Promise<void>,
  hedgeMs: number,
  reachability: Reachability,
): Promise<Round> {
  const outcomes = new Map<string, { ok: true } | { ok: false; err: unknown }>();
  const attempts = targets.map((id) =>
    put(id).then(
      () => {
        reachability.reached(id);
        outcomes.set(id, { ok: true });
        return true;
      },
      (err: unknown) => {
        // The datanode verifies the bytes: a mismatch is the data's fault, an HTTP answer is an answer.
        if (!(err instanceof DatanodeHttpError) && !isChecksumMismatch(err)) reachability.unreachable(id);
        else reachability.reached(id);
        outcomes.set(id, { ok: false, err });
        return false;
      },
    ),
  );
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(attempts), new Promise((resolve) => (timer = setTimeout(resolve, hedgeMs)))]);
  clearTimeout(timer);
  const round: Round = { written: [], late: new Map(), failed: [] };
  targets.forEach((id, i) => {
    const outcome = outcomes.get(id);
    if (!outcome) {
      reachability.unreachable(id);
      round.late.set(id, attempts[i]);
    } else if (outcome.ok) round.written.push(id);
    else if (isChecksumMismatch(outcome.err)) round.mismatch = (outcome.err as Error).message;
    else round.failed.push([id, (outcome.err as Error)?.message]);
  });
  return round;
}

type FragmentToRead = { id: string; sha256: string; replicas: string[]; size?: number };
type ReadDeps = { registry: Registry; client: DatanodeClient; hedgeAfterMs: number; reachability: Reachability };

/**
 * One replica's verified bytes, or undefined (reported through onBad) when it cannot serve them.
 * `onAnswer`: the datanode answered (head arrived, or any HTTP answer): it is reachable.
 */
async function readFrom(
  client: DatanodeClient,
  fragment: { id: string; sha256: string; size?: number },
  datanodeId: string,
  url: string,
  onAnswer: () => void,
  onBad?: (bad: BadReplica) => void,
  hashed = true,
): Promise<Buffer[] | undefined> {
  let data: Buffer[] | undefined;
  let reported: string | undefined; // the hash the datanode computed of the file it read
  try {
    if (client.getFragmentChunks)
      data = await client.getFragmentChunks(url, fragment.id, (sha256) => {
        reported = sha256;
        onAnswer();
      });
    else {
      const whole = await client.getFragment(url, fragment.id);
      data = whole && [whole];
    }
  } catch (err) {
    if (err instanceof DatanodeHttpError) onAnswer();
    onBad?.({ fragmentId: fragment.id, datanodeId, reason: isUnreadable(err) ? 'unreadable' : 'unreachable' });
    return undefined;
  }
  onAnswer();
  if (data === undefined) {
    onBad?.({ fragmentId: fragment.id, datanodeId, reason: 'missing' });
    return undefined;
  }
  // Unhashed (the client checks the whole image): the datanode's own hash of what it read from
  // disk and the size stand for ours; a bad disk is caught here still, the wire by the client.
  const sound =
    !hashed && reported !== undefined && fragment.size !== undefined
      ? reported === fragment.sha256 && byteLength(data) === fragment.size
      : sha256Hex(data) === fragment.sha256;
  if (!sound) {
    onBad?.({ fragmentId: fragment.id, datanodeId, reason: 'corrupt' });
    return undefined;
  }
  return data;
}

/**
 * Replicas are asked in order (live datanodes first, those this coordinator could not reach lately
 * after the others); the next one is asked as soon as one
 * fails, or alongside one that has not answered within hedgeAfterMs: a partitioned datanode
 * does not refuse, it hangs until the request deadline, and the monitor needs a few samples
 * to call it DOWN. The first verified answer wins.
 */
function readFirstVerified(
  { registry, client, hedgeAfterMs, reachability }: ReadDeps,
  fragment: FragmentToRead,
  onBad?: (bad: BadReplica) => void,
  hashed = true,
): Promise<Buffer[]> {
  // Live datanodes first, and among them those this coordinator reached lately.
  const avoided = reachability.avoided();
  const rank = (id: string) => Number(registry.isLive(id)) * 2 + Number(!avoided.has(id));
  const candidates = [...fragment.replicas]
    .sort((a, b) => rank(b) - rank(a))
    .flatMap((id) => {
      const node = registry.get(id);
      return node ? [{ id, url: node.url }] : [];
    });
  return new Promise<Buffer[]>((resolve, reject) => {
    let next = 0;
    let pending = 0;
    let settled = false;
    let hedge: NodeJS.Timeout | undefined;
    const askNext = () => {
      clearTimeout(hedge);
      if (settled) return;
      if (next >= candidates.length) {
        if (pending === 0) {
          settled = true;
          reject(new TesseraError('IMAGE_UNAVAILABLE', `Fragment ${fragment.id} has no readable, verified replica.`));
        }
        return;
      }
      const { id, url } = candidates[next++];
      pending += 1;
      // Any answer, even one that loses the race or arrives after the hedge, shows it reachable.
      let answered = false;
      const onAnswer = () => {
        answered = true;
        reachability.reached(id);
      };
      void readFrom(client, fragment, id, url, onAnswer, onBad, hashed).then((data) => {
        pending -= 1;
        if (settled) return;
        if (data) {
          settled = true;
          clearTimeout(hedge);
          resolve(data);
        } else askNext();
      });
      // Slow by the hedge: the next replica is asked alongside; and with not even the answer's head
      // yet (a big body may still be arriving from a healthy one), this datanode goes last for a while.
      const silent = () => {
        if (!answered) reachability.unreachable(id);
        askNext();
      };
      if (next < candidates.length) hedge = setTimeout(silent, hedgeAfterMs);
    };
    askNext();
  });
}
