// The coordinator's HTTP surface on node:http: GraphQL (Yoga: POST/GET, multipart, SSE,
// GraphiQL) and graphql-ws on /graphql, GET /images/{name}, GET /healthz.
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga } from 'graphql-yoga';
import { createFetch } from '@whatwg-node/fetch';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import type { Context } from '../context.ts';
import type { Coordinator } from '../coordinator.ts';
import { MAX_FRAGMENT_SIZE } from '../config.ts';
import { schema } from '../schema/index.ts';
import { handleImageRequest } from './image-route.ts';
import { badUserInputCode, payloadTooLargeCode } from './graphql-error-plugins.ts';
import { jsonErrorBodies } from './error-bodies.ts';
import { GRAPHIQL_WELCOME, graphiqlDelivery } from './graphiql-delivery.ts';
import { consoleRoute } from './console-route.ts';
import { errorBody, TesseraError } from '../errors.ts';
import { asGraphQLError, domainErrors, maskUnexpectedErrors } from './graphql-errors.ts';
import { jsonBodyLimit, limitRequestBody, requestBodyLimit } from './request-body-limit.ts';
import { multipartRequests } from './multipart.ts';
import { createBodyBudget, MULTIPART_BUDGET_BYTES } from '../memory-budget.ts';
import { authPlugin } from '../auth/plugin.ts';
import { authorizeImageRequest } from '../auth/image-access.ts';
import type { Principal } from '../auth/rules.ts';
import { corsFor, crossSiteRequestGuard, GRAPHIQL_SAFE_OPTIONS, graphiqlPageHeaders, websocketOriginAllowed } from './cross-site.ts';
import { boundedMessage, graphqlLimits, WS_LIMITS } from './graphql-limits.ts';
import { operationAuthorization, UNAUTHENTICATED_SOCKET_GRACE_MS } from './graphql-ws-auth.ts';

export const GRAPHQL_PATH = '/graphql';

function headerOf(request: Request | IncomingMessage, name: string): string | undefined {
  if ('get' in request.headers && typeof request.headers.get === 'function') return request.headers.get(name) ?? undefined;
  const value = (request as IncomingMessage).headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export function createHttpServer(app: Coordinator) {
  const { config } = app;

  // Who sent an HTTP request, found by the auth plugin before parsing; graphql-ws connections
  // keep theirs on the socket (onConnect).
  const principals = new WeakMap<Request, Principal>();
  const contextFor = (request: Request | IncomingMessage, principal?: Principal): Context => {
    const host = headerOf(request, 'host') ?? `${config.host}:${config.port}`;
    return {
      app,
      publicBase: config.publicUrl ?? `http://${host}`,
      principal: principal ?? principals.get(request as Request),
    };
  };

  const multipartLimits = {
    fileSize: Math.max(config.maxUploadImageSize, MAX_FRAGMENT_SIZE),
    files: 4,
    fieldSize: 1024 * 1024,
    fields: 8,
    // A request without uploadFragment can only be uploadImage: its file is refused past
    // --max-upload-image-size while it is read, not once it is whole.
    fileSizeFor: (fields: ReadonlyMap<string, string>) => (/\buploadFragment\b/.test(fields.get('operations') ?? '') ? MAX_FRAGMENT_SIZE : config.maxUploadImageSize),
    idleTimeoutMs: config.bodyTimeoutSec * 1000,
    // Bodies that stall halfway hold what they sent until the timeout: together they get a budget.
    budget: createBodyBudget(MULTIPART_BUDGET_BYTES),
  };
  const yoga = createYoga<Record<string, unknown>, Context>({
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
    // Our multipart parser first, so payloadTooLargeCode wraps it like it wrapped Yoga's.
    maskedErrors: { maskError: maskUnexpectedErrors },
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

  const serveConsole = consoleRoute();
  const server = http.createServer((req, res) => {
    // Yoga builds a URL from Host: a malformed one would end in a 500 with a stack trace.
    if (req.headers.host !== undefined && !URL.canParse(`http://${req.headers.host}/`)) {
      const body = errorBody(new TesseraError('BAD_REQUEST', 'The Host header is malformed.'));
      res.writeHead(400, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
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
      const body = path === GRAPHQL_PATH ? JSON.stringify({ errors: [{ message: err.message, extensions: { code: err.code } }] }) : errorBody(err);
      res.writeHead(err.status, { 'content-type': 'application/json', 'retry-after': '5' }).end(body);
      return;
    }
    handleImageRequest(req, res, app.images, (name) => authorizeImageRequest(app.auth, req, name), app.renditions)
      .then((handled) => {
        if (!handled) void yoga(req, res);
      })
      .catch((err) => app.log.error({ err }, 'image request failed'));
  });
  server.keepAliveTimeout = 65_000;
  // A client that sends its headers slowly, or a request slowly, is cut off (multipart bodies
  // that stall are dropped sooner, by --body-timeout).
  server.headersTimeout = 20_000;
  server.requestTimeout = 600_000;

  // graphql-ws on the same path, executed through Yoga's envelope (the recipe in Yoga's docs).
  // A page on another origin may not open it (browsers send Origin; CLIs do not).
  const verifyClient = ({ req }: { req: IncomingMessage }, answer: (ok: boolean, status?: number, reason?: string) => void) =>
    answer(websocketOriginAllowed(req, config.corsOrigins, config.publicUrl), 403, 'Origin not allowed');
  const wss = new WebSocketServer({ server, path: GRAPHQL_PATH, verifyClient, maxPayload: jsonBodyLimit(config.fragmentSize) });
  type Envelope = { execute: (a: ExecutionArgs) => never; subscribe: (a: ExecutionArgs) => never };
  // `authorization`: the header the connection was authenticated with (undefined: anonymous).
  type Extra = { principal?: Principal; authorization?: string; release?: () => void; refused?: number };
  type WsCtx = { extra: Extra & { socket: import('ws').WebSocket } };
  /** Authenticates the connection once (throws UNAUTHENTICATED); false when closed with 4429. */
  const bindPrincipal = (ctx: WsCtx, header: string | undefined): boolean => {
    const principal = app.auth.authenticate(header);
    const release = app.auth.quotas.openSocket(principal, (code, reason) => ctx.extra.socket.close(code, reason));
    if (!release) {
      ctx.extra.socket.close(4429, 'RATE_LIMITED: too many graphql-ws connections for this token');
      return false;
    }
    ctx.extra.socket.once('close', release);
    ctx.extra.principal = principal;
    ctx.extra.authorization = header;
    return true;
  };
  useServer<Record<string, unknown> | undefined, Extra>(
    {
      // The token comes in connectionParams (browsers cannot set headers on a WebSocket), else
      // in the upgrade request's Authorization header. Refused: closed with 4401, or 4429 past
      // the token's connection limit. A connection with neither waits for its first operation's
      // extensions.headers (what GraphiQL sends, graphql-ws-auth.ts), and is closed with 4401
      // if no operation has brought a valid token within the grace period.
      onConnect: (ctx) => {
        const param = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        const header = typeof param === 'string' ? param : headerOf(ctx.extra.request, 'authorization');
        if (header === undefined) {
          const timer = setTimeout(() => {
            if (!ctx.extra.principal) ctx.extra.socket.close(4401, 'UNAUTHENTICATED: no token in connectionParams nor in an operation');
          }, UNAUTHENTICATED_SOCKET_GRACE_MS);
          ctx.extra.socket.once('close', () => clearTimeout(timer));
          return true;
        }
        try {
          return bindPrincipal(ctx, header);
        } catch (err) {
          ctx.extra.socket.close(4401, `UNAUTHENTICATED: ${(err as Error).message}`.slice(0, 120));
          return false;
        }
      },
      execute: (args) => (args.rootValue as Envelope).execute(args),
      subscribe: (args) => (args.rootValue as Envelope).subscribe(args),
      onSubscribe: async (ctx, _id, params) => {
        // A closed connection's remaining messages (a flood already received) cost nothing more.
        if (ctx.extra.socket.readyState !== ctx.extra.socket.OPEN) return [new GraphQLError('The connection is closing.', { extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } })];
        if (Object.keys(ctx.subscriptions).length >= WS_LIMITS.operationsPerConnection) {
          // A client that keeps subscribing past the cap is flooding: closed rather than answered each time.
          ctx.extra.refused = (ctx.extra.refused ?? 0) + 1;
          if (ctx.extra.refused >= WS_LIMITS.refusedSubscribesPerConnection) {
            const socket = ctx.extra.socket;
            socket.close(4429, `TOO_MANY_SUBSCRIPTIONS: more than ${WS_LIMITS.operationsPerConnection} at once`);
            // What the flood already sent is not handed to graphql-ws (each would be parsed and answered).
            socket.removeAllListeners('message');
            // A client that stopped reading never answers the close frame: cut it off after a few
            // seconds, not ws's 30 (a reset also discards the close frame if it has not read it yet).
            setTimeout(() => socket.terminate(), 5000).unref();
          }
          return [new GraphQLError(`A connection may hold ${WS_LIMITS.operationsPerConnection} subscriptions at once.`, { extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } })];
        }
        const given = operationAuthorization(params.extensions);
        if (!ctx.extra.principal) {
          // An error for this operation (GraphiQL shows it), the connection stays unauthenticated.
          try {
            if (!bindPrincipal(ctx, given)) return [new GraphQLError('Too many graphql-ws connections for this token.', { extensions: { code: 'RATE_LIMITED' } })];
          } catch (err) {
            return [asGraphQLError(err) as GraphQLError];
          }
        } else if (given !== undefined && given !== ctx.extra.authorization) {
          return [new GraphQLError('This connection is authenticated with another token: open a new one to use this token.', { extensions: { code: 'UNAUTHENTICATED' } })];
        }
        const request = ctx.extra.request;
        // Each operation counts against the token's rate; the auth plugin checks its role.
        if (ctx.extra.principal) {
          try {
            await app.auth.quotas.admit(ctx.extra.principal);
          } catch (err) {
            return [asGraphQLError(err) as GraphQLError];
          }
        }
        // Not as `request`: Yoga would take the socket's GET for an HTTP GET and refuse mutations.
        const { schema: s, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({ ...ctx, req: request, socket: ctx.extra.socket, params });
        let document;
        try {
          document = parse(params.query);
        } catch (err) {
          // An error message for this operation, not a closed socket.
          if (err instanceof GraphQLError) return [new GraphQLError(boundedMessage(err.message), { extensions: { code: 'GRAPHQL_PARSE_FAILED', ...err.extensions } })];
          throw err;
        }
        const args = {
          schema: s,
          operationName: params.operationName,
          document,
          variableValues: params.variables,
          contextValue: { ...(await contextFactory()), ...contextFor(request, ctx.extra.principal) },
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length > 0) {
          for (const e of errors) e.message = boundedMessage(e.message);
          return errors;
        }
        return args;
      },
      onNext: (ctx) => {
        // A consumer that stopped reading: drop it before what we send it piles up in memory.
        if (ctx.extra.socket.bufferedAmount > WS_LIMITS.maxBufferedBytes) ctx.extra.socket.terminate();
      },
    },
    wss,
  );

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
