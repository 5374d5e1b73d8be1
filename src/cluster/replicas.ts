// Writing a fragment to R datanodes and reading it back from any verified replica: the two
// halves of the data path every service (uploads, downloads, repair) goes through.
import type { Logger } from 'pino';
import { TesseraError } from '../errors.ts';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import { isChecksumMismatch, isUnreadable, type DatanodeClient } from './datanode-client.ts';
import { sha256Hex, type Bytes } from '../bytes.ts';
import { placeReplicas } from './placement.ts';
import type { ImageManifest } from '../shared/datanode-api.ts';
import type { Registry } from './registry.ts';

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
}: {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
  now?: () => number;
  /** A read that has not answered after this long is joined by one from the next replica. */
  hedgeAfterMs?: number;
}) {
  const insufficient = (want: number, have: number) =>
    new TesseraError(
      'INSUFFICIENT_DATANODES',
      `Needs ${want} live datanode${want === 1 ? '' : 's'} for the replicas; ${have} could take one.`,
    );

  const replicas = {
    /**
     * Writes `data` to `count` distinct live datanodes (not `exclude`), falling back to other
     * datanodes when one fails. Each target is first recorded as a write intent, so a write
     * that is never recorded (failure or crash) is cleaned from the datanodes later. The caller
     * must record the returned datanodes as replicas (which clears their intents) or release them.
     * `manifest`: recorded by each datanode together with the fragment.
     */
    async write(
      fragmentId: string,
      data: Bytes,
      sha256: string,
      count: number,
      exclude: ReadonlySet<string> = new Set(),
      manifest?: ImageManifest,
    ): Promise<string[]> {
      const attempted: string[] = [];
      const written: string[] = [];
      try {
        while (written.length < count) {
          const want = count - written.length;
          const targets = placeReplicas(fragmentId, registry.all(), want, new Set([...exclude, ...attempted]));
          if (targets.length < want) throw insufficient(count, written.length + targets.length);
          await catalog.addWriteIntents(fragmentId, targets);
          attempted.push(...targets);
          const results = await Promise.allSettled(
            targets.map((id) => client.putFragment(registry.get(id)!.url, fragmentId, data, sha256, manifest)),
          );
          // The datanodes verify the bytes against `sha256`: a mismatch is the data's fault, not the datanode's.
          const mismatch = results.find((r) => r.status === 'rejected' && isChecksumMismatch(r.reason));
          if (mismatch)
            throw new TesseraError(
              'CHECKSUM_MISMATCH',
              `Fragment ${fragmentId}: the bytes do not hash to ${sha256} (${(mismatch as PromiseRejectedResult).reason.message}).`,
            );
          results.forEach((r, i) => {
            if (r.status === 'fulfilled') written.push(targets[i]);
            else
              log.warn(
                { datanode: targets[i], fragment: fragmentId, err: r.reason?.message },
                'replica write failed; trying another datanode',
              );
          });
        }
      } catch (err) {
        await catalog.releaseWriteIntents(fragmentId, attempted, now());
        throw err;
      }
      // A failed PUT may still have landed (its answer lost): those files are cleaned too.
      const failed = attempted.filter((d) => !written.includes(d));
      if (failed.length > 0) await catalog.releaseWriteIntents(fragmentId, failed, now());
      return written;
    },

    /**
     * The fragment's bytes from the first replica that answers them with the indexed hash:
     * live datanodes first, the others as a last resort. IMAGE_UNAVAILABLE when none does.
     */
    async read(fragment: { id: string; sha256: string; replicas: string[] }, onBad?: (bad: BadReplica) => void): Promise<Buffer> {
      const chunks = await readChunks(fragment, onBad);
      return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    },

    /** As read, but the bytes stay the chunks they arrived in: a download streams them on without joining them. */
    readChunks,
  };
  return replicas;

  function readChunks(fragment: FragmentToRead, onBad?: (bad: BadReplica) => void): Promise<Buffer[]> {
    return readFirstVerified({ registry, client, hedgeAfterMs }, fragment, onBad);
  }
}

export type Replicas = ReturnType<typeof createReplicas>;

type FragmentToRead = { id: string; sha256: string; replicas: string[] };
type ReadDeps = { registry: Registry; client: DatanodeClient; hedgeAfterMs: number };

/** One replica's verified bytes, or undefined (reported through onBad) when it cannot serve them. */
async function readFrom(
  client: DatanodeClient,
  fragment: { id: string; sha256: string },
  datanodeId: string,
  url: string,
  onBad?: (bad: BadReplica) => void,
): Promise<Buffer[] | undefined> {
  let data: Buffer[] | undefined;
  try {
    if (client.getFragmentChunks) data = await client.getFragmentChunks(url, fragment.id);
    else {
      const whole = await client.getFragment(url, fragment.id);
      data = whole && [whole];
    }
  } catch (err) {
    onBad?.({ fragmentId: fragment.id, datanodeId, reason: isUnreadable(err) ? 'unreadable' : 'unreachable' });
    return undefined;
  }
  if (data === undefined) {
    onBad?.({ fragmentId: fragment.id, datanodeId, reason: 'missing' });
    return undefined;
  }
  if (sha256Hex(data) !== fragment.sha256) {
    onBad?.({ fragmentId: fragment.id, datanodeId, reason: 'corrupt' });
    return undefined;
  }
  return data;
}

/**
 * Replicas are asked in order (live datanodes first); the next one is asked as soon as one
 * fails, or alongside one that has not answered within hedgeAfterMs: a partitioned datanode
 * does not refuse, it hangs until the request deadline, and the monitor needs a few samples
 * to call it DOWN. The first verified answer wins.
 */
function readFirstVerified(
  { registry, client, hedgeAfterMs }: ReadDeps,
  fragment: FragmentToRead,
  onBad?: (bad: BadReplica) => void,
): Promise<Buffer[]> {
  const candidates = [...fragment.replicas]
    .sort((a, b) => Number(registry.isLive(b)) - Number(registry.isLive(a)))
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
      void readFrom(client, fragment, id, url, onBad).then((data) => {
        pending -= 1;
        if (settled) return;
        if (data) {
          settled = true;
          clearTimeout(hedge);
          resolve(data);
        } else askNext();
      });
      if (next < candidates.length) hedge = setTimeout(askNext, hedgeAfterMs);
    };
    askNext();
  });
}
