// What a rendition is: its parameters (from GET /images/{name}?w=&h=&fit=&format=&q= or the
// GraphQL field), checked against the limits, their canonical variant key (one cache entry per
// distinct output), and the output's size computed from the source's the way sharp resizes.
import { TesseraError } from '../errors.ts';

export const RENDITION_FITS = ['cover', 'contain', 'inside', 'outside', 'fill'] as const;
export type RenditionFit = (typeof RENDITION_FITS)[number];
export const RENDITION_FORMATS = ['webp', 'jpeg', 'png', 'avif'] as const;
export type RenditionFormat = (typeof RENDITION_FORMATS)[number];

export const RENDITION_MEDIA_TYPES: Record<RenditionFormat, string> = {
  webp: 'image/webp',
  jpeg: 'image/jpeg',
  png: 'image/png',
  avif: 'image/avif',
};
export const DEFAULT_QUALITY = 80;

export interface RenditionParams {
  width: number | null;
  height: number | null;
  fit: RenditionFit;
  format: RenditionFormat;
  quality: number;
}

export interface RenditionLimits {
  /** Largest width or height a rendition may ask for. */
  maxSize: number;
  /** When not empty: the only widths and heights allowed (a crawler cannot mint other variants). */
  allowedSizes: readonly number[];
}

const notAllowed = (message: string) => new TesseraError('RENDITION_NOT_ALLOWED', message);

function checkSize(what: string, value: number | null, limits: RenditionLimits): void {
  if (value === null) return;
  if (!Number.isInteger(value) || value < 1 || value > limits.maxSize)
    throw notAllowed(`${what} must be an integer from 1 to ${limits.maxSize} (got ${value}).`);
  if (limits.allowedSizes.length > 0 && !limits.allowedSizes.includes(value))
    throw notAllowed(`${what} must be one of ${limits.allowedSizes.join(', ')} (got ${value}).`);
}

/** The parameters checked and completed (fit cover, format webp, quality 80 by default). */
export function checkRendition(
  input: { width?: number | null; height?: number | null; fit?: string | null; format?: string | null; quality?: number | null },
  limits: RenditionLimits,
): RenditionParams {
  const params: RenditionParams = {
    width: input.width ?? null,
    height: input.height ?? null,
    fit: (input.fit ?? 'cover') as RenditionFit,
    format: (input.format ?? 'webp') as RenditionFormat,
    quality: input.quality ?? DEFAULT_QUALITY,
  };
  if (params.width === null && params.height === null) throw notAllowed('A rendition needs a width (w) or a height (h).');
  checkSize('width', params.width, limits);
  checkSize('height', params.height, limits);
  if (!RENDITION_FITS.includes(params.fit)) throw notAllowed(`fit must be one of ${RENDITION_FITS.join(', ')}.`);
  if (!RENDITION_FORMATS.includes(params.format)) throw notAllowed(`format must be one of ${RENDITION_FORMATS.join(', ')}.`);
  if (!Number.isInteger(params.quality) || params.quality < 1 || params.quality > 100)
    throw notAllowed(`quality (q) must be an integer from 1 to 100 (got ${params.quality}).`);
  return params;
}

/** The rendition asked for by a query string, or undefined when it asks for the original. */
export function renditionFromQuery(query: URLSearchParams, limits: RenditionLimits): RenditionParams | undefined {
  const keys = ['w', 'h', 'fit', 'format', 'q'];
  if (!keys.some((k) => query.has(k))) return undefined;
  const int = (k: string) => {
    const v = query.get(k);
    if (v === null) return null;
    if (!/^\d{1,6}$/.test(v)) throw notAllowed(`${k} must be a positive integer.`);
    return Number(v);
  };
  return checkRendition(
    { width: int('w'), height: int('h'), fit: query.get('fit'), format: query.get('format'), quality: int('q') },
    limits,
  );
}

/** The query string of a rendition, in canonical order: also its cache variant key. */
export function renditionQuery(p: RenditionParams): string {
  const q = new URLSearchParams();
  if (p.width !== null) q.set('w', String(p.width));
  if (p.height !== null) q.set('h', String(p.height));
  q.set('fit', p.fit);
  q.set('format', p.format);
  q.set('q', String(p.quality));
  return q.toString();
}

/**
 * The output size sharp gives for a source of `width` x `height` (as shown, after rotation):
 * one given side keeps the aspect ratio; with both, cover/contain/fill are exactly the box,
 * inside fits within it and outside covers it.
 */
export function renditionSize(
  src: { width: number; height: number },
  p: Pick<RenditionParams, 'width' | 'height' | 'fit'>,
): { width: number; height: number } {
  const round = (n: number) => Math.max(1, Math.round(n));
  if (p.height === null) return { width: p.width!, height: round((src.height * p.width!) / src.width) };
  if (p.width === null) return { width: round((src.width * p.height) / src.height), height: p.height };
  if (p.fit === 'cover' || p.fit === 'contain' || p.fit === 'fill') return { width: p.width, height: p.height };
  const scale =
    p.fit === 'inside' ? Math.min(p.width / src.width, p.height / src.height) : Math.max(p.width / src.width, p.height / src.height);
  return { width: round(src.width * scale), height: round(src.height * scale) };
}
