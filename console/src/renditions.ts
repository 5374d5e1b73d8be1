// Pictures as <img> tags load them: renditions at GET /images/{name}?w=&h=&fit=&format= (sharp on
// the coordinator, cached in the cluster), from the image's signed URL (an <img> sends no token).
// Built here rather than asked of Image.rendition: that field fails for a stored non-image, and
// one such file would fail the whole gallery page; here it is one tile without a picture.

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
export const isPicture = (image: { format: string | null }) => image.format !== null;
