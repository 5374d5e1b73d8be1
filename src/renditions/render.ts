// Making a rendition with sharp (libvips): EXIF orientation applied, resized, re-encoded. At most
// `concurrency` at once, a bounded queue behind them (past it: RENDITION_BUSY), and a time limit
// on each (libvips stops the work: RENDITION_TIMEOUT); sources larger than `maxPixels` are
// refused before decoding (IMAGE_TOO_LARGE).
import sharp from 'sharp';
import pLimit from 'p-limit';
import { TesseraError } from '../errors.ts';
import type { RenditionParams } from './params.ts';

// libvips' operation cache keeps decoded images around between calls: renditions never repeat
// an operation (the rendition cache does that), so it would only hold memory.
sharp.cache(false);

/** Renditions waiting for a turn, per allowed one at once: past it a request is refused. */
const QUEUE_PER_SLOT = 16;
/** Seconds libvips may spend on one rendition. */
export const RENDITION_TIMEOUT_SEC = 30;

export interface Rendered {
  data: Buffer;
  width: number;
  height: number;
}

/**
 * The sharp pipeline of one rendition: EXIF orientation applied, then sharp's resize (which lets
 * libvips shrink a JPEG on load, decoding it at 1/2, 1/4 or 1/8 scale), then the encoder. Also
 * what bench/renditions.ts calls as "sharp direct", so that both sides do the same work.
 */
export const renditionPipeline = (source: Buffer, p: RenditionParams, maxPixels: number) =>
  sharp(source, { limitInputPixels: maxPixels, sequentialRead: true, failOn: 'error' })
    .rotate()
    .resize({ width: p.width ?? undefined, height: p.height ?? undefined, fit: p.fit })
    .toFormat(p.format, { quality: p.quality })
    .timeout({ seconds: RENDITION_TIMEOUT_SEC });

export function createRenderer({ concurrency, maxPixels }: { concurrency: number; maxPixels: number }) {
  const limit = pLimit(concurrency);
  const maxQueue = concurrency * QUEUE_PER_SLOT;

  async function renderNow(source: Buffer, p: RenditionParams): Promise<Rendered> {
    try {
      const { data, info } = await renditionPipeline(source, p, maxPixels).toBuffer({ resolveWithObject: true });
      return { data, width: info.width, height: info.height };
    } catch (err) {
      const message = (err as Error).message;
      if (/pixel limit/i.test(message))
        throw new TesseraError('IMAGE_TOO_LARGE', `The image has more than ${maxPixels} pixels, the most a rendition decodes.`);
      if (/timeout/i.test(message))
        throw new TesseraError('RENDITION_TIMEOUT', `The rendition took longer than ${RENDITION_TIMEOUT_SEC} s.`);
      throw new TesseraError('NOT_AN_IMAGE', 'The image could not be decoded.');
    }
  }

  return {
    /** Refuses a source too large to decode, from its known size, before any byte is read. */
    assertDecodable(width: number, height: number): void {
      if (width * height > maxPixels)
        throw new TesseraError(
          'IMAGE_TOO_LARGE',
          `The image is ${width}x${height}, more than the ${maxPixels} pixels a rendition decodes.`,
        );
    },
    /** Queues the rendition (RENDITION_BUSY when the queue is full). */
    render(source: () => Promise<Buffer>, p: RenditionParams): Promise<Rendered> {
      if (limit.pendingCount >= maxQueue)
        throw new TesseraError('RENDITION_BUSY', `${limit.pendingCount} renditions are waiting; retry later.`);
      return limit(async () => renderNow(await source(), p));
    },
  };
}

export type Renderer = ReturnType<typeof createRenderer>;
