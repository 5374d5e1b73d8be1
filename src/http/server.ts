// The coordinator's HTTP surface on node:http: GraphQL (Yoga: POST/GET, multipart, SSE,
// GraphiQL) and graphql-ws on /graphql, GET /images/{name}, GET /healthz.
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga } from 'graphql-yoga';
import { createFetch } from '@whatwg-node/fetch';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import type { ExecutionArgs } from 'graphql';
import { isAuthorized } from '../../datanode/secret.ts';
import type { Context } from '../context.ts';
import type { Coordinator } from '../coordinator.ts';
import { MAX_FRAGMENT_SIZE } from '../config.ts';
import { TesseraError, errorBody } from '../errors.ts';
import { schema } from '../schema/index.ts';
import { handleImageRequest } from './image-route.ts';
import { badUserInputCode, payloadTooLargeCode } from './graphql-error-plugins.ts';
import { limitRequestBody, requestBodyLimit } from './request-body-limit.ts';
import { multipartRequests } from './multipart.ts';

export const GRAPHQL_PATH = '/graphql';

function headerOf(request: Request | IncomingMessage, name: string): string | undefined {
  if ('get' in request.headers && typeof request.headers.get === 'function') return request.headers.get(name) ?? undefined;
  const value = (request as IncomingMessage).headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export function createHttpServer(app: Coordinator) {
  const { config } = app;

  const contextFor = (request: Request | IncomingMessage): Context => {
    const host = headerOf(request, 'host') ?? `${config.host}:${config.port}`;
    return {
      app,
      publicBase: config.publicUrl ?? `http://${host}`,
      authorized: isAuthorized(headerOf(request, 'authorization'), config.secret),
    };
  };

  const multipartLimits = { fileSize: Math.max(config.maxUploadImageSize, MAX_FRAGMENT_SIZE), files: 4, fieldSize: 1024 * 1024 };
  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    context: ({ request }) => contextFor(request),
    // GraphiQL from the package, not a CDN; subscriptions in it over graphql-ws. The package is a
    // 9 MB script: loaded on the first browser visit, not at start (it cost ~60 MB of RSS).
    renderGraphiQL: async (options) => (await import('@graphql-yoga/render-graphiql')).renderGraphiQL(options),
    graphiql: { title: 'Tessera', subscriptionsProtocol: 'WS' },
    // One multipart part is one fragment or one uploadImage file, held in memory (multipart.ts).
    fetchAPI: createFetch({ formDataLimits: { fileSize: multipartLimits.fileSize, files: multipartLimits.files } }),
    // Our multipart parser first, so payloadTooLargeCode wraps it like it wrapped Yoga's.
    plugins: [multipartRequests(multipartLimits), payloadTooLargeCode, badUserInputCode, limitRequestBody(requestBodyLimit(config.maxUploadImageSize))],
    maxRequestBodySize: false, // limitRequestBody instead
    logging: {
      debug: (...args) => app.log.debug(args.join(' ')),
      info: (...args) => app.log.info(args.join(' ')),
      warn: (...args) => app.log.warn(args.join(' ')),
      error: (...args) => app.log.error(args.map(String).join(' ')),
    },
  });

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    // A coordinator rebuilding its index at start answers a clear error until it is done,
    // rather than an empty or partial listing (GraphQL-shaped on /graphql, {code, message} elsewhere).
    if (app.rebuilding()) {
      const err = new TesseraError('INDEX_REBUILDING');
      const body = path === GRAPHQL_PATH ? JSON.stringify({ errors: [{ message: err.message, extensions: { code: err.code } }] }) : errorBody(err);
      res.writeHead(err.status, { 'content-type': 'application/json', 'retry-after': '5' }).end(body);
      return;
    }
    handleImageRequest(req, res, app.images)
      .then((handled) => {
        if (!handled) void yoga(req, res);
      })
      .catch((err) => app.log.error({ err }, 'image request failed'));
  });
  server.keepAliveTimeout = 65_000;

  // graphql-ws on the same path, executed through Yoga's envelope (the recipe in Yoga's docs).
  const wss = new WebSocketServer({ server, path: GRAPHQL_PATH });
  type Envelope = { execute: (a: ExecutionArgs) => never; subscribe: (a: ExecutionArgs) => never };
  useServer(
    {
      execute: (args) => (args.rootValue as Envelope).execute(args),
      subscribe: (args) => (args.rootValue as Envelope).subscribe(args),
      onSubscribe: async (ctx, _id, params) => {
        const request = ctx.extra.request;
        // `request` too: Yoga's context factory (contextFor) reads the headers from it.
        const { schema: s, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({ ...ctx, req: request, request, socket: ctx.extra.socket, params });
        const args = {
          schema: s,
          operationName: params.operationName,
          document: parse(params.query),
          variableValues: params.variables,
          contextValue: { ...(await contextFactory()), ...contextFor(request) },
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        return errors.length > 0 ? errors : args;
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
