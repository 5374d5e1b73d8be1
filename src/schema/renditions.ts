// Images as images: Image.format/width/height/orientation and Image.rendition (resized or
// re-encoded copies served by GET /images/{name}?w=&h=&fit=&format=&q=).
import { builder } from './builder.ts';
import { ImageRef } from './images.ts';
import { IMAGE_FORMATS } from '../renditions/media.ts';
import { RENDITION_FITS, RENDITION_FORMATS, type RenditionFormat } from '../renditions/params.ts';
import { imagePath } from '../image-paths.ts';

const FORMAT_DESCRIPTIONS: Record<(typeof IMAGE_FORMATS)[number], string> = {
  PNG: 'Portable Network Graphics (image/png).',
  JPEG: 'JPEG (image/jpeg).',
  WEBP: 'WebP (image/webp).',
  GIF: 'Graphics Interchange Format (image/gif).',
  AVIF: 'AV1 Image File Format (image/avif).',
  TIFF: 'Tagged Image File Format (image/tiff).',
  SVG: 'Scalable Vector Graphics (image/svg+xml); its width and height are those it declares.',
};

const FIT_DESCRIPTIONS: Record<(typeof RENDITION_FITS)[number], string> = {
  cover: 'Fills the whole box, cropping what overflows (centred).',
  contain: 'Fits the whole picture in the box, letterboxed to the box size.',
  inside: 'Fits the whole picture within the box; the rendition may be smaller than the box on one side.',
  outside: 'Covers the box without cropping; the rendition may be larger than the box on one side.',
  fill: 'Stretches the picture to the exact box, ignoring its aspect ratio.',
};

const ENCODING_DESCRIPTIONS: Record<RenditionFormat, string> = {
  webp: 'WebP: small files, read by every current browser.',
  jpeg: 'JPEG: photographs, read everywhere.',
  png: 'PNG: lossless, with transparency.',
  avif: 'AVIF: the smallest files, slower to encode.',
};

const ImageFormatEnum = builder.enumType('ImageFormat', {
  description: 'The format of a stored image, detected from its bytes.',
  values: Object.fromEntries(IMAGE_FORMATS.map((f) => [f, { value: f, description: FORMAT_DESCRIPTIONS[f] }])) as Record<
    (typeof IMAGE_FORMATS)[number],
    { value: (typeof IMAGE_FORMATS)[number]; description: string }
  >,
});

const RenditionFitEnum = builder.enumType('RenditionFit', {
  description:
    'How a rendition fits the box of width x height (as sharp resizes): cover and contain fill the box (cropped or letterboxed), fill stretches, inside fits within it, outside covers it.',
  values: Object.fromEntries(RENDITION_FITS.map((f) => [f.toUpperCase(), { value: f, description: FIT_DESCRIPTIONS[f] }])) as Record<
    Uppercase<(typeof RENDITION_FITS)[number]>,
    { value: (typeof RENDITION_FITS)[number]; description: string }
  >,
});

const RenditionFormatEnum = builder.enumType('RenditionFormat', {
  description: 'The encoding of a rendition.',
  values: Object.fromEntries(
    RENDITION_FORMATS.map((f) => [f.toUpperCase(), { value: f, description: ENCODING_DESCRIPTIONS[f] }]),
  ) as Record<Uppercase<RenditionFormat>, { value: RenditionFormat; description: string }>,
});

/** Seconds a rendition URL signed for a token-carrying request stays valid, unless asked otherwise. */
const DEFAULT_RENDITION_URL_SEC = 3600;

type Rendition = { url: string; width: number; height: number; format: RenditionFormat };
const RenditionRef = builder.objectRef<Rendition>('Rendition').implement({
  description: 'A resized or re-encoded copy of an image, made on first request and then served from the rendition cache.',
  fields: (t) => ({
    url: t.exposeString('url', {
      description:
        'GET /images/{name} with the rendition parameters; signed (usable by an <img> tag without a token) when the request carried a token.',
    }),
    width: t.exposeInt('width', { description: 'Width in pixels of the rendition.' }),
    height: t.exposeInt('height', { description: 'Height in pixels of the rendition.' }),
    format: t.field({ type: RenditionFormatEnum, description: 'The encoding of the rendition.', resolve: (r) => r.format }),
  }),
});

builder.objectFields(ImageRef, (t) => ({
  format: t.field({
    type: ImageFormatEnum,
    nullable: true,
    description: 'The format detected from the bytes; null when they are not an image of a known format.',
    resolve: async (i, _args, ctx) => (await ctx.app.imageMedia.of(i)).format,
  }),
  width: t.int({
    nullable: true,
    description: 'Width in pixels as a viewer shows it (after EXIF orientation); null for a non-image.',
    resolve: async (i, _args, ctx) => (await ctx.app.imageMedia.of(i)).width,
  }),
  height: t.int({
    nullable: true,
    description: 'Height in pixels as a viewer shows it (after EXIF orientation); null for a non-image.',
    resolve: async (i, _args, ctx) => (await ctx.app.imageMedia.of(i)).height,
  }),
  orientation: t.int({
    nullable: true,
    description: 'The EXIF orientation (1 to 8) the bytes carry, if any; width and height already account for it.',
    resolve: async (i, _args, ctx) => (await ctx.app.imageMedia.of(i)).orientation,
  }),
  rendition: t.field({
    type: RenditionRef,
    description:
      'A resized or re-encoded copy (made with sharp, EXIF orientation applied): its URL and real size. NOT_AN_IMAGE for a non-image; RENDITION_NOT_ALLOWED past the size limits.',
    args: {
      width: t.arg.int({ description: 'Width of the box in pixels; at least one of width and height.' }),
      height: t.arg.int({ description: 'Height of the box in pixels.' }),
      fit: t.arg({ type: RenditionFitEnum, description: 'How the image fits the box when both sides are given (default COVER).' }),
      format: t.arg({ type: RenditionFormatEnum, description: 'Output encoding (default WEBP).' }),
      quality: t.arg.int({ description: 'Encoder quality 1 to 100 (default 80).' }),
      expiresIn: t.arg.int({ description: `Seconds the signed URL stays valid (default ${DEFAULT_RENDITION_URL_SEC}, at most 7 days).` }),
    },
    resolve: async (i, args, ctx) => {
      const { params, size } = await ctx.app.renditions.describe(i, args);
      const url = `${ctx.publicBase}${imagePath(i.name)}?${params.query}`;
      const signed = ctx.principal
        ? `&${ctx.app.auth.signer.sign(i.name, args.expiresIn ?? DEFAULT_RENDITION_URL_SEC, ctx.principal.id)}`
        : '';
      return { url: url + signed, width: size.width, height: size.height, format: params.format };
    },
  }),
}));
