// Headers that keep a stored file from ever running as a page on the API's origin: no sniffing,
// a CSP that allows nothing and sandboxes the document (an HTML or SVG upload runs no script and
// reaches no storage of this origin), and non-images only ever downloaded, never rendered.
import { DEFAULT_CONTENT_TYPE } from '../uploads.ts';
import { isImageMediaType, isValidMediaType } from '../media-types.ts';

export const STORED_FILE_CSP = "default-src 'none'; sandbox";

/** Every answer of the image route, errors and 304 included. */
export const STORED_FILE_BASE_HEADERS = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': STORED_FILE_CSP,
} as const;

/**
 * The content headers for a stored image. A type stored before media types were validated, and
 * no longer valid, is served as application/octet-stream (it could break the response head).
 */
export function storedFileHeaders(storedType: string) {
  const contentType = isValidMediaType(storedType) ? storedType : DEFAULT_CONTENT_TYPE;
  return {
    ...STORED_FILE_BASE_HEADERS,
    'content-type': contentType,
    'content-disposition': isImageMediaType(contentType) ? 'inline' : 'attachment',
  };
}
