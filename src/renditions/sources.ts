// The whole bytes of images renditions were just made from. A gallery asks for several sizes of
// one picture within moments (small, medium and large, twice each for dense screens), and each
// would otherwise read the whole source from the datanodes and verify it again. A byte budget
// bounds the memory; requests for a source being read share that one read.
import { LRUCache } from 'lru-cache';
import type { ImageRow } from '../metadata/catalog.ts';

/** Memory the recent sources may hold (a few 12-megapixel JPEGs). */
export const SOURCE_CACHE_BYTES = 32 * 1024 * 1024;

export function createSourceCache(read: (image: ImageRow) => Promise<Buffer>, budgetBytes = SOURCE_CACHE_BYTES) {
  const kept = new LRUCache<string, Buffer>({ maxSize: budgetBytes, sizeCalculation: (bytes) => Math.max(1, bytes.length) });
  const reading = new Map<string, Promise<Buffer>>();
  return {
    /** The image's bytes: kept, being read for another rendition, or read now. */
    read(image: ImageRow): Promise<Buffer> {
      // An image row's bytes never change (a new upload under the name is a new row), the hash
      // makes that explicit.
      const key = `${image.id}/${image.sha256}`;
      const hit = kept.get(key);
      if (hit) return Promise.resolve(hit);
      let pending = reading.get(key);
      if (!pending) {
        pending = read(image)
          .then((bytes) => {
            if (bytes.length <= budgetBytes) kept.set(key, bytes);
            return bytes;
          })
          .finally(() => reading.delete(key));
        reading.set(key, pending);
      }
      return pending;
    },
    /** Bytes held now. */
    get heldBytes(): number {
      return kept.calculatedSize;
    },
  };
}
