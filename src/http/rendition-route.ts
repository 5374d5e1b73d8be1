// GET/HEAD /images/{name}?w=&h=&fit=&format=&q=: a rendition of the image (renditions/), with
// the stored-file security headers, a strong ETag known before the rendition is made (a 304
// costs no decoding) and a Cache-Control that keeps it in the requesting browser only.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ImageRow } from '../metadata/catalog.ts';
import type { RenditionParams } from '../renditions/params.ts';
import type { Renditions } from '../renditions/service.ts';
import { STORED_FILE_BASE_HEADERS, storedFileHeaders } from './stored-file-headers.ts';
// Called at request time only, so the two route modules importing each other is harmless.
import { etagMatches, sendFragments } from './image-route.ts';

/** private: the answer to a token-bearing request; a day, since the ETag changes with the source. */
export const RENDITION_CACHE_CONTROL = 'private, max-age=86400';

export async function serveRendition(
  req: IncomingMessage,
  res: ServerResponse,
  image: ImageRow,
  params: RenditionParams,
  renditions: Renditions,
): Promise<void> {
  const etag = renditions.etagOf(image, params);
  const validators = { etag, 'cache-control': RENDITION_CACHE_CONTROL, vary: 'Authorization' };
  if (etagMatches(req.headers['if-none-match'] as string | undefined, etag)) {
    res.writeHead(304, { ...STORED_FILE_BASE_HEADERS, ...validators }).end();
    return;
  }
  const r = await renditions.get(image, params);
  const headers = {
    ...storedFileHeaders(r.contentType),
    ...validators,
    'content-length': r.size,
    'x-tessera-rendition': `${r.width}x${r.height}; ${r.cached ? 'cached' : 'made'}`,
  };
  if (req.method === 'HEAD') {
    if (!Buffer.isBuffer(r.body)) await r.body.return(undefined);
    res.writeHead(200, headers).end();
    return;
  }
  res.writeHead(200, headers);
  if (Buffer.isBuffer(r.body)) {
    res.end(r.body);
    return;
  }
  await sendFragments(res, r.body);
}
