// Writing a fragment to R datanodes and reading it back from any verified replica: the two
// halves of the data path every service (uploads, downloads, repair) goes through.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { TesseraError } from '../errors.ts';
import type { Catalog } from '../metadata/catalog.ts';
import type { DatanodeClient } from './datanode-client.ts';
import { placeReplicas } from './placement.ts';
import type { Registry } from './registry.ts';

export const sha256Hex = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** A replica that could not serve a verified copy: reported so it can be repaired. */
export interface BadReplica {
  fragmentId: string;
  datanodeId: string;
  reason: 'missing' | 'corrupt' | 'unreachable';
}

export function createReplicas({ catalog, registry, client, log, now = Date.now }: {
  catalog: Catalog;
  registry: Registry;
  client: DatanodeClient;
  log: Logger;
  now?: () => number;
}) {
  const insufficient = (want: number, have: number) =>
    new TesseraError('INSUFFICIENT_DATANODES', `Needs ${want} live datanode${want === 1 ? '' : 's'} for the replicas; ${have} could take one.`);

  return {
    /**
     * Writes `data` to `count` distinct live datanodes (not `exclude`), falling back to other
     * datanodes when one fails. Each target is first recorded as a write intent, so a write
     * that is never recorded (failure or crash) is cleaned from the datanodes later. The caller
     * must record the returned datanodes as replicas (which clears their intents) or release them.
     */
    async write(fragmentId: string, data: Buffer, sha256: string, count: number, exclude: ReadonlySet<string> = new Set()): Promise<string[]> {
      const attempted: string[] = [];
      const written: string[] = [];
      try {
        while (written.length < count) {
          const want = count - written.length;
          const targets = placeReplicas(fragmentId, registry.all(), want, new Set([...exclude, ...attempted]));
          if (targets.length < want) throw insufficient(count, written.length + targets.length);
          catalog.addWriteIntents(fragmentId, targets);
          attempted.push(...targets);
          const results = await Promise.allSettled(targets.map((id) => client.putFragment(registry.get(id)!.url, fragmentId, data, sha256)));
          results.forEach((r, i) => {
            if (r.status === 'fulfilled') written.push(targets[i]);
            else log.warn({ datanode: targets[i], fragment: fragmentId, err: r.reason?.message }, 'replica write failed; trying another datanode');
          });
        }
      } catch (err) {
        catalog.releaseWriteIntents(fragmentId, attempted, now());
        throw err;
      }
      // A failed PUT may still have landed (its answer lost): those files are cleaned too.
      const failed = attempted.filter((d) => !written.includes(d));
      if (failed.length > 0) catalog.releaseWriteIntents(fragmentId, failed, now());
      return written;
    },

    /**
     * The fragment's bytes from the first replica that answers them with the indexed hash:
     * live datanodes first, the others as a last resort. IMAGE_UNAVAILABLE when none does.
     */
    async read(fragment: { id: string; sha256: string; replicas: string[] }, onBad?: (bad: BadReplica) => void): Promise<Buffer> {
      const order = [...fragment.replicas].sort((a, b) => Number(registry.isLive(b)) - Number(registry.isLive(a)));
      for (const datanodeId of order) {
        const node = registry.get(datanodeId);
        if (!node) continue;
        let data: Buffer | undefined;
        try {
          data = await client.getFragment(node.url, fragment.id);
        } catch {
          onBad?.({ fragmentId: fragment.id, datanodeId, reason: 'unreachable' });
          continue;
        }
        if (data === undefined) {
          onBad?.({ fragmentId: fragment.id, datanodeId, reason: 'missing' });
          continue;
        }
        if (sha256Hex(data) !== fragment.sha256) {
          onBad?.({ fragmentId: fragment.id, datanodeId, reason: 'corrupt' });
          continue;
        }
        return data;
      }
      throw new TesseraError('IMAGE_UNAVAILABLE', `Fragment ${fragment.id} has no readable, verified replica.`);
    },
  };
}

export type Replicas = ReturnType<typeof createReplicas>;
