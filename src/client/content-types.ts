// Media types guessed from a file name's extension, for the common image formats only: anything
// else is left to the coordinator's default (application/octet-stream).
import { extname } from 'node:path';

const BY_EXTENSION: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.svg': 'image/svg+xml',
  '.bmp': 'image/bmp',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.ico': 'image/vnd.microsoft.icon',
  '.heic': 'image/heic',
};

/** The media type for `filename`'s extension, or undefined when it is not a known image type. */
export const contentTypeOf = (filename: string): string | undefined => BY_EXTENSION[extname(filename).toLowerCase()];
