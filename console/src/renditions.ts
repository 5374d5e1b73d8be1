// Pictures as <img> tags load them: renditions at GET /images/{name}?w=&h=&fit=&format= (sharp on
// the coordinator, cached in the cluster), from the image's signed URL (an <img> sends no token).
// Built here rather than asked of Image.rendition: that field fails for a stored non-image, and
// one such file would fail the whole gallery page; here it is one tile without a picture.

/** What the gallery and the image page query of every stored file to show it. */
export interface ShownImage {
  name: string;
  size: number;
  contentType: string;
  /** Detected from the bytes; null for a file that is not a picture. */
  format: string | null;
  width: number | null;
  height: number | null;
  /** Image.url(expiresIn:): loads without a token, as an <img> must. */
  signedUrl: string;
}

/** A WebP that fits a `box` x `box` square, from a signed image URL. */
export function renditionUrl(signedUrl: string, box: number): string {
  const url = new URL(signedUrl, location.href);
  url.searchParams.set('w', String(box));
  url.searchParams.set('h', String(box));
  url.searchParams.set('fit', 'inside');
  url.searchParams.set('format', 'webp');
  return url.href;
}

/** Whether the coordinator can make renditions of it (its format was detected from its bytes). */
export const isPicture = (image: ShownImage) => image.format !== null;
