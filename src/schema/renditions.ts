// Images as images: Image.format/width/height/orientation and Image.rendition (resized or
// re-encoded copies served by GET /images/{name}?w=&h=&fit=&format=&q=).
import { builder } from './builder.ts';
import { ImageRef } from './images.ts';
import { IMAGE_FORMATS } from '../renditions/media.ts';
import { RENDITION_FITS, RENDITION_FORMATS, type RenditionFormat } from '../renditions/params.ts';
import { imagePath } from '../image-paths.ts';

const ImageFormatEnum = builder.enumType('ImageFormat', {
  description: 'The format of a stored image, detected from its bytes.',
  values: IMAGE_FORMATS,
});

const RenditionFitEnum = builder.enumType('RenditionFit', {
  description:
    'How a rendition fits the box of width x height (as sharp resizes): cover and contain fill the box (cropped or letterboxed), fill stretches, inside fits within it, outside covers it.',
  values: Object.fromEntries(RENDITION_FITS.map((f) => [f.toUpperCase(), { value: f }])) as Record<
    Uppercase<(typeof RENDITION_FITS)[number]>,
    { value: (typeof RENDITION_FITS)[number] }
  >,
});

const RenditionFormatEnum = builder.enumType('RenditionFormat', {
  description: 'The encoding of a rendition.',
  values: Object.fromEntries(RENDITION_FORMATS.map((f) => [f.toUpperCase(), { value: f }])) as Record<
    Uppercase<RenditionFormat>,
    { value: RenditionFormat }
  >,
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
