// An image's media columns, detected on first read for images stored before detection existed
// (their first bytes fetched from a replica once, the outcome kept in the index).
import type { ImageMediaColumns, ImageRow } from '../metadata/catalog.ts';
import type { AsyncCatalog as Catalog } from '../metadata/store.ts';
import { detectImageIn, mediaColumns } from './media.ts';

/** Bytes read from the start of an old image to detect it: every sniffed header fits. */
const DETECT_BYTES = 512 * 1024;

export type ReadRange = (image: ImageRow, start: number, end: number) => Promise<AsyncGenerator<Buffer[]>>;

export function createImageMedia({ catalog, readRange }: { catalog: Catalog; readRange: ReadRange }) {
  const inFlight = new Map<number, Promise<ImageMediaColumns>>();

  async function detectStored(image: ImageRow): Promise<ImageMediaColumns> {
    const chunks: Buffer[] = [];
    for await (const fragment of await readRange(image, 0, Math.min(image.size, DETECT_BYTES) - 1)) chunks.push(...fragment);
    const media = mediaColumns(detectImageIn(chunks));
    await catalog.setMedia(image, media);
    return media;
  }

  return {
    /** The image's format, size and orientation; read from its bytes once if the index lacks them. */
    async of(image: ImageRow): Promise<ImageMediaColumns> {
      if (image.mediaChecked) return image;
      let pending = inFlight.get(image.id);
      if (!pending) {
        pending = detectStored(image).finally(() => inFlight.delete(image.id));
        inFlight.set(image.id, pending);
      }
      return pending;
    },
  };
}

export type ImageMediaService = ReturnType<typeof createImageMedia>;
