// The coordinator's HTTP surface on node:http: GraphQL (Yoga: POST/GET, multipart, SSE,
// GraphiQL) and graphql-ws on /graphql, GET /images/{name}, PUT /uploads/{id}/fragments/{index}, GET /healthz.
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga } from 'graphql-yoga';
import { createFetch } from '@whatwg-node/fetch';
import type { Context } from '../context.ts';
import type { Coordinator } from '../coordinator.ts';
import { MAX_FRAGMENT_SIZE } from '../config.ts';
import { schema } from '../schema/index.ts';
import { handleImageRequest } from './image-route.ts';
import { handleImageUpload, isImageUpload, type ImageUploadDeps } from './image-upload-route.ts';
import { handleFragmentUpload, isFragmentUploadPath } from './fragment-upload-route.ts';
import { badUserInputCode, payloadTooLargeCode } from './graphql-error-plugins.ts';
import { jsonErrorBodies } from './error-bodies.ts';
import { GRAPHIQL_WELCOME, graphiqlDelivery } from './graphiql-delivery.ts';
import { consoleRoute } from './console-route.ts';
import { errorBody, TesseraError } from '../errors.ts';
import { domainErrors, maskUnexpectedErrors } from './graphql-errors.ts';
import { jsonBodyLimit, limitRequestBody, requestBodyLimit } from './request-body-limit.ts';
import { multipartRequests } from './multipart.ts';
import { createBodyBudget, MULTIPART_BUDGET_BYTES, type BodyBudget } from '../memory-budget.ts';
import { authPlugin } from '../auth/plugin.ts';
import { authorizeChange, authorizeImageRequest } from '../auth/image-access.ts';
import type { Principal } from '../auth/rules.ts';
import { corsFor, crossSiteRequestGuard, GRAPHIQL_SAFE_OPTIONS, graphiqlPageHeaders } from './cross-site.ts';
import { graphqlLimits } from './graphql-limits.ts';
import { serveGraphqlWs } from './graphql-ws-server.ts';
import { headerOf } from './request-headers.ts';

export const GRAPHQL_PATH = '/graphql';

type ContextFor = (request: Request | IncomingMessage, principal?: Principal) => Context;

/** Yoga with our plugins: GraphQL over POST/GET, multipart, SSE and GraphiQL. */
function createGraphqlServer(app: Coordinator, principals: WeakMap<Request, Principal>, contextFor: ContextFor, budget: BodyBudget) {
  const { config } = app;
  const multipartLimits = {
    fileSize: Math.max(config.maxUploadImageSize, MAX_FRAGMENT_SIZE),
    files: 4,
    fieldSize: 1024 * 1024,
    fields: 8,
    // A request without uploadFragment can only be uploadImage: its file is refused past
    // --max-upload-image-size while it is read, not once it is whole.
    fileSizeFor: (fields: ReadonlyMap<string, string>) =>
      /\buploadFragment\b/.test(fields.get('operations') ?? '') ? MAX_FRAGMENT_SIZE : config.maxUploadImageSize,
    idleTimeoutMs: config.bodyTimeoutSec * 1000,
    // Bodies that stall halfway hold what they sent until the timeout: together they get a budget.
    budget,
  };
  return createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    cors: corsFor(config.corsOrigins),
    // graphql-ws passes no `request` (so that Yoga's checks for HTTP skip it), only `req`.
    context: ({ request, req }) => contextFor(request ?? (req as IncomingMessage)),
    // GraphiQL from the package, not a CDN; subscriptions in it over graphql-ws. The package is a
    // large script: loaded on the first browser visit, not at start, so a coordinator nobody
    // browses never holds it in memory.
    renderGraphiQL: async (options) => (await import('@graphql-yoga/render-graphiql')).renderGraphiQL(options),
    graphiql: { title: 'Tessera', subscriptionsProtocol: 'WS', defaultQuery: GRAPHIQL_WELCOME, ...GRAPHIQL_SAFE_OPTIONS },
    // One multipart part is one fragment or one uploadImage file, held in memory (multipart.ts).
    fetchAPI: createFetch({ formDataLimits: { fileSize: multipartLimits.fileSize, files: multipartLimits.files } }),
    maskedErrors: { maskError: maskUnexpectedErrors },
    // Domain errors become GraphQL errors before Yoga's masking (which runs last); our multipart
    // parser before payloadTooLargeCode, so that it wraps it like it wrapped Yoga's.
    plugins: [
      domainErrors,
      crossSiteRequestGuard(),
      graphiqlPageHeaders,
      authPlugin(app.auth, principals),
      multipartRequests(multipartLimits),
      payloadTooLargeCode,
      badUserInputCode,
      limitRequestBody(requestBodyLimit(config.maxUploadImageSize), jsonBodyLimit(config.fragmentSize)),
      jsonErrorBodies(GRAPHQL_PATH),
      graphiqlDelivery(),
      ...graphqlLimits(),
    ],
    maxRequestBodySize: false, // limitRequestBody instead
    logging: {
      debug: (...args) => app.log.debug(args.join(' ')),
      info: (...args) => app.log.info(args.join(' ')),
      warn: (...args) => app.log.warn(args.join(' ')),
      error: (...args) => app.log.error(args.map(String).join(' ')),
    },
  });
}

/** The request handler: /healthz, the web console, INDEX_REBUILDING while the start-up rebuild runs, /images/{name}, /uploads/…, else Yoga. */
function routeRequest(app: Coordinator, yoga: ReturnType<typeof createGraphqlServer>, upload: ImageUploadDeps): http.RequestListener {
  const serveConsole = consoleRoute();
  return (req, res) => {
    // Yoga builds a URL from Host: a malformed one would end in a 500 with a stack trace.
    if (req.headers.host !== undefined && !URL.canParse(`http://${req.headers.host}/`)) {
      const body = errorBody(new TesseraError('BAD_REQUEST', 'The Host header is malformed.'));
      res
        .writeHead(400, {
          'content-type': 'application/json; charset=utf-8',
          'content-length': Buffer.byteLength(body),
          connection: 'close',
        })
        .end(body);
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (serveConsole(req, res, path)) return;
    // A coordinator rebuilding its index at start answers a clear error until it is done,
    // rather than an empty or partial listing (GraphQL-shaped on /graphql, {code, message} elsewhere).
    if (app.rebuilding()) {
      const err = new TesseraError('INDEX_REBUILDING');
      const body =
        path === GRAPHQL_PATH ? JSON.stringify({ errors: [{ message: err.message, extensions: { code: err.code } }] }) : errorBody(err);
      res.writeHead(err.status, { 'content-type': 'application/json', 'retry-after': '5' }).end(body);
      return;
    }
    if (isImageUpload(req, path)) {
      handleImageUpload(req, res, path, upload).catch((err) => serverFault(app, res, err));
      return;
    }
    if (isFragmentUploadPath(path)) {
      handleFragmentUpload(req, res, path, upload).catch((err) => serverFault(app, res, err));
      return;
    }
    const access = {
      read: (name: string) => authorizeImageRequest(app.auth, req, name),
      delete: () => authorizeChange(app.auth, req, 'DELETE /images/{name}'),
    };
    handleImageRequest(req, res, app.images, access, app.renditions)
      .then((handled) => {
        if (!handled) void yoga(req, res);
      })
      .catch((err) => app.log.error({ err }, 'image request failed'));
  };
}

/** An unexpected failure of a REST route: logged; the client gets a 500 without the details. */
function serverFault(app: Coordinator, res: http.ServerResponse, err: unknown) {
  app.log.error({ err }, 'request failed');
  if (res.headersSent) return void res.destroy();
  const body = errorBody(new TesseraError('INTERNAL_SERVER_ERROR'));
  res.writeHead(500, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
}

export function createHttpServer(app: Coordinator) {
  const { config } = app;
  // Who sent an HTTP request, found by the auth plugin before parsing; graphql-ws connections
  // keep theirs on the socket (onConnect).
  const principals = new WeakMap<Request, Principal>();
  const contextFor: ContextFor = (request, principal) => {
    const host = headerOf(request, 'host') ?? `${config.host}:${config.port}`;
    return {
      app,
      publicBase: config.publicUrl ?? `http://${host}`,
      principal: principal ?? principals.get(request as Request),
    };
  };
  // Bodies that stall halfway hold what they sent until the timeout: together they get a budget.
  const budget = createBodyBudget(MULTIPART_BUDGET_BYTES);
  const yoga = createGraphqlServer(app, principals, contextFor, budget);
  const upload = {
    auth: app.auth,
    uploads: app.uploads,
    maxBytes: config.maxUploadImageSize,
    budget,
    idleTimeoutMs: config.bodyTimeoutSec * 1000,
  };
  const server = http.createServer(routeRequest(app, yoga, upload));
  server.keepAliveTimeout = 65_000;
  // A client that sends its headers slowly, or a request slowly, is cut off (multipart bodies
  // that stall are dropped sooner, by --body-timeout).
  server.headersTimeout = 20_000;
  server.requestTimeout = 600_000;
  const wss = serveGraphqlWs(server, GRAPHQL_PATH, { app, yoga, contextFor });

  return {
    server,
    yoga,
    listen(port = config.port, host = config.host): Promise<{ port: number; url: string }> {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const address = server.address() as AddressInfo;
          resolve({ port: address.port, url: `http://${host}:${address.port}` });
        });
      });
    },
    async close() {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type HttpServer = ReturnType<typeof createHttpServer>;
