// GraphiQL as a browser should get it: the page (a 9 MB inline script) compressed once with
// brotli or gzip (node:zlib, on the thread pool) and kept, with an ETag so a revisit costs a 304,
// and a welcome text about Tessera instead of GraphiQL's generic one.
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { Plugin } from 'graphql-yoga';

const brotli = promisify(brotliCompress);
const gzipped = promisify(gzip);

/**
 * The query GraphiQL opens with: how to use the page, then ONE anonymous operation to run.
 * GraphiQL re-reads the editor's operations on a debounce, so a run right after replacing the
 * text uses the old text's operations: with two, the run button opens a picker and sends nothing
 * (the "Execute does nothing" report); with one named, it sends the old name and fails in the
 * page ("Cannot infer operation"). One unnamed operation leaves nothing stale behind.
 */
export const GRAPHIQL_WELCOME = `# Welcome to Tessera's GraphiQL.
#
# Every call needs a token: open the Headers pane under this editor and write
#   { "Authorization": "Bearer <token>" }
# (npm start writes the admin token to <data-dir>/admin.token), then press the refresh button on
# the left to load the schema for the Docs and autocompletion.
#
# Write an operation here, press the run button (or Ctrl-Enter) and the answer shows on the right.
# The Docs button lists every query, mutation and subscription with its description.
# Subscriptions (clusterEvents, datanodeHealth) run over WebSocket.
#
# Arguments written as $name come from the Variables pane: with { "name": "cats/tabby.png" } there,
#   query Image($name: String!) { image(name: $name) { name size sha256 fragmentCount createdAt url } }
# An image's bytes are at GET /images/{name}, e.g. http://127.0.0.1:4000/images/cats/tabby.png.

{
  images(first: 10) {
    totalCount
    edges { node { name size contentType url } }
  }
}
`;

type Encoding = 'br' | 'gzip';

/** The best encoding the client accepts (q=0 refuses one), brotli first. */
export function chooseEncoding(acceptEncoding: string | null): Encoding | undefined {
  const accepted = new Map<string, number>();
  for (const part of (acceptEncoding ?? '').split(',')) {
    const [token, ...params] = part.trim().toLowerCase().split(';');
    if (!token) continue;
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    accepted.set(token, q === undefined ? 1 : Number(q));
  }
  const weight = (e: string) => accepted.get(e) ?? (accepted.has('*') ? accepted.get('*')! : 0);
  return (['br', 'gzip'] as const).find((e) => weight(e) > 0);
}

interface Prepared {
  html: string;
  etag: string;
  encoded: Record<Encoding, Promise<Buffer>>;
}

export function graphiqlDelivery(): Plugin {
  let prepared: Prepared | undefined;
  const prepare = (html: string): Prepared => {
    if (prepared?.html === html) return prepared;
    const source = Buffer.from(html);
    prepared = {
      html,
      etag: `"${createHash('sha256').update(source).digest('hex').slice(0, 32)}"`,
      encoded: {
        // Once per page: level 9 is slow, but runs once and shrinks the script several times over.
        br: brotli(source, { params: { [constants.BROTLI_PARAM_QUALITY]: 9, [constants.BROTLI_PARAM_SIZE_HINT]: source.length } }),
        gzip: gzipped(source, { level: 9 }),
      },
    };
    return prepared;
  };

  return {
    async onResponse({ request, response, setResponse, fetchAPI }) {
      if (request.method !== 'GET' || response.status !== 200 || !response.headers.get('content-type')?.startsWith('text/html')) return;
      const page = prepare(await response.text());
      const headers = new fetchAPI.Headers(response.headers);
      headers.set('etag', page.etag);
      // Revalidated on every visit (the page changes with an upgrade); unchanged, it is a 304.
      headers.set('cache-control', 'no-cache');
      headers.set('vary', 'accept-encoding');
      const tags = request.headers.get('if-none-match');
      if (tags && tags.split(',').some((t) => t.trim().replace(/^W\//, '') === page.etag || t.trim() === '*')) {
        headers.delete('content-type');
        setResponse(new fetchAPI.Response(null, { status: 304, headers }));
        return;
      }
      const encoding = chooseEncoding(request.headers.get('accept-encoding'));
      const body = encoding ? await page.encoded[encoding] : Buffer.from(page.html);
      if (encoding) headers.set('content-encoding', encoding);
      headers.set('content-length', String(body.length));
      setResponse(new fetchAPI.Response(body as Uint8Array<ArrayBuffer>, { status: 200, headers }));
    },
  };
}
