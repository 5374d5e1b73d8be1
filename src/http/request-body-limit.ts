// The cap on a GraphQL request's body, in place of Yoga's maxRequestBodySize: Yoga's default
// (25 MB) refused one-shot uploads the configured --max-upload-image-size allows (64 MiB), and it
// pipes every body through a counting TransformStream, a per-chunk cost on each 2 MiB fragment.
// A declared Content-Length is checked up front (node:http never reads past it), so only a
// chunked body still needs counting.
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { MAX_FRAGMENT_SIZE } from '../config.ts';

/** Room for the operations JSON, the map and the multipart framing around the bytes. */
const ENVELOPE_BYTES = 1024 * 1024;

/** The largest body a legitimate request has: a one-shot upload, or the biggest fragment as base64 JSON. */
export const requestBodyLimit = (maxUploadImageSize: number) =>
  Math.max(maxUploadImageSize, 4 * Math.ceil(MAX_FRAGMENT_SIZE / 3)) + ENVELOPE_BYTES;

/**
 * The largest body of a request that is not multipart: a fragment of the configured size as
 * base64 JSON. A 60 MB query is refused here, before it is read, let alone parsed.
 */
export const jsonBodyLimit = (fragmentSize: number) => 4 * Math.ceil(fragmentSize / 3) + ENVELOPE_BYTES;

const tooLarge = (limit: number) =>
  new GraphQLError(`The request body is larger than ${limit} bytes.`, { extensions: { http: { status: 413 }, code: 'PAYLOAD_TOO_LARGE' } });

/** `jsonLimit`: the (lower) cap of bodies that are not multipart/form-data. */
export function limitRequestBody(multipartLimit: number, jsonLimit = multipartLimit): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      const limit = /^multipart\/form-data\b/i.test(request.headers.get('content-type') ?? '') ? multipartLimit : jsonLimit;
      const declared = request.headers.get('content-length');
      if (declared !== null) {
        if (!/^\d+$/.test(declared))
          throw new GraphQLError('Content-Length header is invalid.', { extensions: { http: { status: 400 }, code: 'BAD_REQUEST' } });
        if (Number(declared) > limit) throw tooLarge(limit);
        return;
      }
      if (!requestParser || !request.body) return;
      setRequestParser((req) => {
        let seen = 0;
        const counted = req.body!.pipeThrough(
          new fetchAPI.TransformStream({
            transform(chunk: Uint8Array, controller) {
              seen += chunk.byteLength;
              if (seen > limit) controller.error(tooLarge(limit));
              else controller.enqueue(chunk);
            },
          }),
        );
        return requestParser(
          new fetchAPI.Request(req.url, {
            method: req.method,
            headers: req.headers,
            signal: req.signal,
            body: counted,
            duplex: 'half',
          } as RequestInit),
        );
      });
    },
  };
}
