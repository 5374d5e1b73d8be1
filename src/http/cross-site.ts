// What keeps a page on another origin from using the API through a visitor's browser: CORS only
// for the configured origins and never with credentials, no operation as a "simple" request
// (Yoga's CSRF prevention: a non-simple header or a preflighted content type), no url-encoded
// operations, graphql-ws only from this origin or a configured one, safe headers on GraphiQL.
import type { IncomingMessage } from 'node:http';
import type { Plugin, YogaServerOptions } from 'graphql-yoga';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { TesseraError } from '../errors.ts';
import { toGraphQLError } from './graphql-errors.ts';

/** The header our own clients add to requests a browser could send without a preflight. */
export const CSRF_HEADER = 'x-graphql-yoga-csrf';

/** Request headers a configured origin may send (the preflight answers exactly these). */
const ALLOWED_HEADERS = ['content-type', 'accept', 'authorization', CSRF_HEADER];

/**
 * Yoga's `cors` option: off (no CORS header at all) without configured origins; else only a
 * listed origin is named, never `*`, never reflected, and never with credentials.
 */
export function corsFor(origins: readonly string[]): YogaServerOptions<object, object>['cors'] {
  if (origins.length === 0) return false;
  const allowed = new Set(origins);
  return (request: Request) => {
    const origin = request.headers.get('origin');
    if (origin === null || !allowed.has(origin)) return false;
    return { origin: [origin], credentials: false, methods: ['GET', 'POST'], allowedHeaders: ALLOWED_HEADERS, maxAge: 600 };
  };
}

const refused = (code: 'CSRF_HEADER_REQUIRED' | 'UNSUPPORTED_MEDIA_TYPE', message: string, status: number) =>
  toGraphQLError(new TesseraError(code, message, { http: { status } }));

/**
 * Yoga's CSRF prevention with our codes: a request whose content type a browser may send
 * cross-site without a preflight (none, text/plain, multipart/form-data) must carry CSRF_HEADER
 * or a bearer token, which no page can add without passing CORS. Url-encoded bodies are refused
 * outright: no client of ours sends them, and they are what an HTML form posts.
 */
export function crossSiteRequestGuard(): Plugin {
  const csrf = useCSRFPrevention({ requestHeaders: [CSRF_HEADER] });
  return {
    onRequestParse(payload) {
      const { request } = payload;
      if (/^application\/x-www-form-urlencoded\b/i.test(request.headers.get('content-type')?.trim() ?? '')) {
        throw refused(
          'UNSUPPORTED_MEDIA_TYPE',
          'GraphQL requests must be JSON (or multipart for files), not application/x-www-form-urlencoded.',
          415,
        );
      }
      // A browser adds `Authorization` by itself only for HTTP Basic/Digest: a bearer token is always the caller's own.
      if (/^bearer\s/i.test(request.headers.get('authorization') ?? '')) return;
      try {
        return csrf.onRequestParse!(payload);
      } catch {
        throw refused(
          'CSRF_HEADER_REQUIRED',
          `This request could come from any web page: send it as application/json, or add the "${CSRF_HEADER}" header.`,
          403,
        );
      }
    },
  };
}

// GraphiQL is one inline script that starts its editors' workers from blob: URLs.
const GRAPHIQL_CSP = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-inline'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  'worker-src blob:',
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** GraphiQL (the only HTML Yoga answers): no framing, no sniffing, no referrer, a tight CSP. */
export const graphiqlPageHeaders: Plugin = {
  onResponse({ response }) {
    if (!response.headers.get('content-type')?.startsWith('text/html')) return;
    response.headers.set('content-security-policy', GRAPHIQL_CSP);
    response.headers.set('x-frame-options', 'DENY');
    response.headers.set('x-content-type-options', 'nosniff');
    response.headers.set('referrer-policy', 'no-referrer');
  },
};

/** GraphiQL options that keep what is typed in its header editor (tokens) out of localStorage. */
export const GRAPHIQL_SAFE_OPTIONS = { shouldPersistHeaders: false } as const;

/**
 * Whether a WebSocket upgrade may open graphql-ws: always without `Origin` (not a browser), else
 * only from this server's own origin (GraphiQL), `publicUrl`'s, or a configured one.
 */
export function websocketOriginAllowed(req: IncomingMessage, origins: readonly string[], publicUrl?: string): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (origins.includes(origin)) return true;
  if (publicUrl !== undefined && new URL(publicUrl).origin === origin) return true;
  try {
    const { protocol, host } = new URL(origin);
    return (protocol === 'http:' || protocol === 'https:') && host === req.headers.host;
  } catch {
    return false;
  }
}
