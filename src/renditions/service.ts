// Renditions of stored images: what GraphQL's Image.rendition describes and GET
// /images/{name}?w=… serves. A rendition is looked up in the cache, else made (once, however
// many ask for it at the same time) from the source's bytes and cached.
import { createHash } from 'node:crypto';
import { TesseraError } from '../errors.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import type { ImageMediaService } from './image-media.ts';
import type { RenditionCache } from './cache.ts';
import type { Renderer } from './render.ts';
import { createSourceCache } from './sources.ts';
import {
  checkRendition,
  RENDITION_MEDIA_TYPES,
  renditionFromQuery,
  renditionQuery,
  renditionSize,
  type RenditionParams,
} from './params.ts';

export interface RenditionConfig {
  /** Largest width or height a rendition may ask for. */
  maxSize: number;
  /** When not empty, the only widths and heights a rendition may ask for. */
  allowedSizes: readonly number[];
}

/** Largest source a rendition reads into memory. */
export const MAX_RENDITION_SOURCE_BYTES = 64 * 1024 * 1024;

export interface RenditionBody {
  contentType: string;
  size: number;
  width: number;
  height: number;
  /** The rendition's bytes, in memory when just made, else streamed from the cache's replicas. */
  body: Buffer | AsyncGenerator<Buffer[]>;
  cached: boolean;
}

type ReadRange = (image: ImageRow, start: number, end: number) => Promise<AsyncGenerator<Buffer[]>>;

/** The source's shown size; NOT_AN_IMAGE or IMAGE_TOO_LARGE before any byte is read. */
async function decodableSizeOf(
  imageMedia: ImageMediaService,
  renderer: Renderer,
  image: ImageRow,
): Promise<{ width: number; height: number }> {
  const media = await imageMedia.of(image);
  if (!media.format || !media.width || !media.height)
    throw new TesseraError('NOT_AN_IMAGE', `"${image.name}" is not an image of a format renditions read.`);
  renderer.assertDecodable(media.width, media.height);
  if (image.size > MAX_RENDITION_SOURCE_BYTES)
    throw new TesseraError('IMAGE_TOO_LARGE', `Renditions read images up to ${MAX_RENDITION_SOURCE_BYTES} bytes.`);
  return { width: media.width, height: media.height };
}

/** The source's bytes, whole. */
async function readWholeImage(readRange: ReadRange, image: ImageRow): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const fragment of await readRange(image, 0, image.size - 1)) chunks.push(...fragment);
  return Buffer.concat(chunks, image.size);
}

export function createRenditions({
  config,
  readRange,
  imageMedia,
  cache,
  renderer,
}: {
  config: RenditionConfig;
  readRange: ReadRange;
  imageMedia: ImageMediaService;
  cache: RenditionCache;
  renderer: Renderer;
}) {
  const limits = { maxSize: config.maxSize, allowedSizes: config.allowedSizes };
  // Renditions being made or cached: a request for one of them joins it instead of making it again.
  const making = new Map<string, Promise<{ made: RenditionBody; stored: Promise<void> }>>();

  const decodableSize = (image: ImageRow) => decodableSizeOf(imageMedia, renderer, image);
  const sources = createSourceCache((image) => readWholeImage(readRange, image));
  const wholeImage = (image: ImageRow) => sources.read(image);

  /** Makes the rendition; it is cached in the background (`stored`), not before the answer. */
  async function make(image: ImageRow, params: RenditionParams, variant: string): Promise<{ made: RenditionBody; stored: Promise<void> }> {
    const rendered = await renderer.render(() => wholeImage(image), params);
    const contentType = RENDITION_MEDIA_TYPES[params.format];
    const stored = cache.put(image, variant, rendered, contentType);
    return {
      made: { contentType, size: rendered.data.length, width: rendered.width, height: rendered.height, body: rendered.data, cached: false },
      stored,
    };
  }

  return {
    limits,
    /** The rendition a query string asks for (undefined: the original). */
    paramsFrom: (query: URLSearchParams) => renditionFromQuery(query, limits),

    /** Checked parameters, their canonical query string and the size the rendition will have. */
    async describe(
      image: ImageRow,
      args: { width?: number | null; height?: number | null; fit?: string | null; format?: string | null; quality?: number | null },
    ) {
      const params = checkRendition(args, limits);
      const size = renditionSize(await decodableSize(image), params);
      return { params: { ...params, query: renditionQuery(params) }, size };
    },

    /** A strong validator known before the rendition is made: same source bytes, same variant. */
    etagOf: (image: ImageRow, params: RenditionParams) =>
      `"r${createHash('sha256')
        .update(`${image.sha256}?${renditionQuery(params)}`)
        .digest('base64url')
        .slice(0, 32)}"`,

    /** The rendition from the cache, or made now (and cached). */
    async get(image: ImageRow, params: RenditionParams): Promise<RenditionBody> {
      const variant = renditionQuery(params);
      // A cached rendition was made from these very bytes (the cache is purged with its image),
      // so only a miss needs the source checked before it is read.
      const hit = await cache.get(image, variant);
      if (hit) {
        const body = await readRange(hit.image, 0, hit.image.size - 1);
        return {
          contentType: hit.image.contentType,
          size: hit.image.size,
          width: hit.row.width,
          height: hit.row.height,
          body,
          cached: true,
        };
      }
      await decodableSize(image);
      const key = `${image.id}?${variant}`;
      let pending = making.get(key);
      if (!pending) {
        const started = make(image, params, variant);
        pending = started;
        making.set(key, started);
        started
          .then(
            ({ stored }) => stored,
            () => undefined,
          )
          .finally(() => making.delete(key))
          .catch(() => undefined);
      }
      return (await pending).made;
    },
  };
}

export type Renditions = ReturnType<typeof createRenditions>;
