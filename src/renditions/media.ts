// What an image is, read from its first bytes: format, size as a viewer shows it (after EXIF
// orientation) and the orientation. image-size reads headers only (no decoding), so detection
// costs microseconds on the upload path; formats outside ImageFormat are not sniffed at all,
// since weak signatures (TGA, ICO…) would claim random bytes.
import { imageSize, disableTypes, types } from 'image-size';
import { TesseraError } from '../errors.ts';

export const IMAGE_FORMATS = ['PNG', 'JPEG', 'WEBP', 'GIF', 'AVIF', 'TIFF', 'SVG'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

export interface ImageMedia {
  format: ImageFormat;
  /** As a viewer shows it: width and height swapped for orientations 5 to 8. */
  width: number;
  height: number;
  /** EXIF orientation 1..8, when the bytes carry one. */
  orientation: number | null;
}

const SNIFFED: Record<string, ImageFormat> = {
  png: 'PNG',
  jpg: 'JPEG',
  webp: 'WEBP',
  gif: 'GIF',
  heif: 'AVIF',
  avif: 'AVIF',
  tiff: 'TIFF',
  svg: 'SVG',
};
disableTypes(types.filter((t) => !(t in SNIFFED)));

export const MEDIA_TYPE_OF_FORMAT: Record<ImageFormat, string> = {
  PNG: 'image/png',
  JPEG: 'image/jpeg',
  WEBP: 'image/webp',
  GIF: 'image/gif',
  AVIF: 'image/avif',
  TIFF: 'image/tiff',
  SVG: 'image/svg+xml',
};

/** Other names a client may declare for the same format. */
const ALIASES: Record<string, ImageFormat> = {
  'image/jpg': 'JPEG',
  'image/pjpeg': 'JPEG',
  'image/x-png': 'PNG',
  'image/tif': 'TIFF',
  'image/heif': 'AVIF',
  'image/heic': 'AVIF',
  'image/svg': 'SVG',
};

/** The image's format and dimensions, or undefined for bytes that are not an image we know. */
export function detectImage(bytes: Uint8Array): ImageMedia | undefined {
  if (!maySniff(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))) return undefined;
  let found: ReturnType<typeof imageSize>;
  try {
    found = imageSize(bytes);
  } catch {
    return undefined; // not an image, or its header lies past the bytes we have
  }
  const format = found.type ? SNIFFED[found.type] : undefined;
  if (!format || !found.width || !found.height) return undefined;
  if (format === 'AVIF' && !isAvifBrand(bytes)) return undefined; // HEIC and friends: not AVIF
  const orientation = found.orientation && found.orientation >= 1 && found.orientation <= 8 ? found.orientation : null;
  const turned = orientation !== null && orientation >= 5;
  return { format, width: turned ? found.height : found.width, height: turned ? found.width : found.height, orientation };
}

/** The bytes maySniff looks at: an SVG's root element must open within them (image-size's rule). */
const SIGNATURE_BYTES = 1000;

/**
 * Whether the bytes start as one of the sniffed formats must (what image-size's validators check
 * first): JPEG FF D8, PNG's \x89PNG, GIF8, RIFF (WebP), ftyp at 4 (HEIF, AVIF), II or MM (TIFF),
 * or "<svg" within the first SIGNATURE_BYTES. Anything else is no image of ours, known without
 * image-size, whose detector tries every one of its formats' validators (disabled ones too) on
 * such bytes: a tenth of a millisecond per upload of a non-image.
 */
function maySniff(b: Buffer): boolean {
  if (b.length < 2) return false;
  if ((b[0] === 0xff && b[1] === 0xd8) || (b[0] === 0x49 && b[1] === 0x49) || (b[0] === 0x4d && b[1] === 0x4d)) return true;
  const head = b.toString('latin1', 0, 8);
  if (head.startsWith('GIF8') || head.startsWith('RIFF') || head.startsWith('PNG', 1) || head.startsWith('ftyp', 4)) return true;
  return b.subarray(0, SIGNATURE_BYTES).includes('<svg');
}

/** ISO-BMFF's ftyp box names the brand at bytes 8..12: avif or avis for AVIF. */
function isAvifBrand(bytes: Uint8Array): boolean {
  const brand = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 12)).toString('latin1', 8, 12);
  return brand === 'avif' || brand === 'avis';
}

const essenceOf = (mediaType: string) => mediaType.split(';')[0].trim().toLowerCase();

/**
 * The content type to store: the detected format's when none was declared (or the declared one
 * is the generic application/octet-stream), the declared one when it agrees with the bytes.
 * CONTENT_TYPE_MISMATCH when the bytes are an image of another format than the one declared.
 */
export function reconcileContentType(declared: string | null | undefined, media: ImageMedia | undefined, fallback: string): string {
  if (!media) return declared ?? fallback;
  const detectedType = MEDIA_TYPE_OF_FORMAT[media.format];
  if (declared == null || essenceOf(declared) === 'application/octet-stream') return detectedType;
  const essence = essenceOf(declared);
  if (essence === detectedType || ALIASES[essence] === media.format) return declared;
  throw new TesseraError(
    'CONTENT_TYPE_MISMATCH',
    `contentType ${JSON.stringify(declared.slice(0, 80))} contradicts the bytes, which are a ${media.format} image (${detectedType}).`,
    {
      detected: detectedType,
    },
  );
}

/** Header bytes enough for every sniffed format (a JPEG's EXIF and ICC segments come first). */
const HEAD_BYTES = 512 * 1024;

/** detectImage over the first bytes of an image held as one buffer or as chunks. */
export function detectImageIn(data: Buffer | readonly Buffer[]): ImageMedia | undefined {
  const chunks = Buffer.isBuffer(data) ? [data] : data;
  if (chunks.length === 0) return undefined;
  const first = chunks[0];
  if (first.length >= HEAD_BYTES || chunks.length === 1) return detectImage(first.subarray(0, HEAD_BYTES));
  // Bytes that start no sniffed format need not be joined (a copy of up to HEAD_BYTES) to be told so.
  if (first.length >= SIGNATURE_BYTES && !maySniff(first)) return undefined;
  const head: Buffer[] = [];
  let have = 0;
  for (const c of chunks) {
    if (have >= HEAD_BYTES) break;
    head.push(c.subarray(0, HEAD_BYTES - have));
    have += head[head.length - 1].length;
  }
  return detectImage(Buffer.concat(head, have));
}

/** The index columns for a detection's outcome (all null: not an image). */
export const mediaColumns = (media: ImageMedia | undefined) =>
  media
    ? { format: media.format, width: media.width, height: media.height, orientation: media.orientation }
    : { format: null, width: null, height: null, orientation: null };
