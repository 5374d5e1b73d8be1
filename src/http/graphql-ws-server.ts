// graphql-ws on the GraphQL path, executed through Yoga's envelope (the recipe in Yoga's docs):
// each connection authenticated once, each operation admitted (subscription cap, token rate),
// parsed and validated like an HTTP request. A page on another origin may not open it (browsers
// send Origin; CLIs do not).
import type http from 'node:http';
import type { IncomingMessage } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import type { Context } from '../context.ts';
import type { Coordinator } from '../coordinator.ts';
import type { Auth } from '../auth/service.ts';
import type { Principal } from '../auth/rules.ts';
import { asGraphQLError } from './graphql-errors.ts';
import { jsonBodyLimit } from './request-body-limit.ts';
import { websocketOriginAllowed } from './cross-site.ts';
import { boundedMessage, WS_LIMITS } from './graphql-limits.ts';
import { operationAuthorization, UNAUTHENTICATED_SOCKET_GRACE_MS } from './graphql-ws-auth.ts';
import { headerOf } from './request-headers.ts';

type Envelope = { execute: (a: ExecutionArgs) => never; subscribe: (a: ExecutionArgs) => never };
// `authorization`: the header the connection was authenticated with (undefined: anonymous).
type Extra = { principal?: Principal; authorization?: string; release?: () => void; refused?: number };
type WsCtx = {
  extra: Extra & { socket: WebSocket; request: IncomingMessage };
  connectionParams?: Readonly<Record<string, unknown>>;
  subscriptions: Record<string, unknown>;
};
type Params = {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  extensions?: Record<string, unknown> | null;
};

const wsError = (message: string, code: string) => [new GraphQLError(message, { extensions: { code } })];

/** Authenticates the connection once (throws UNAUTHENTICATED); false when closed with 4429. */
async function bindPrincipal(auth: Auth, ctx: WsCtx, header: string | undefined): Promise<boolean> {
  const principal = await auth.authenticate(header);
  const release = auth.quotas.openSocket(principal, (code, reason) => ctx.extra.socket.close(code, reason));
  if (!release) {
    ctx.extra.socket.close(4429, 'RATE_LIMITED: too many graphql-ws connections for this token');
    return false;
  }
  ctx.extra.socket.once('close', release);
  ctx.extra.principal = principal;
  ctx.extra.authorization = header;
  return true;
}

/**
 * The token comes in connectionParams (browsers cannot set headers on a WebSocket), else in the
 * upgrade request's Authorization header. Refused: closed with 4401, or 4429 past the token's
 * connection limit. A connection with neither waits for its first operation's extensions.headers
 * (what GraphiQL sends, graphql-ws-auth.ts), and is closed with 4401 if no operation has brought
 * a valid token within the grace period.
 */
async function acceptConnection(auth: Auth, ctx: WsCtx): Promise<boolean> {
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
    return await bindPrincipal(auth, ctx, header);
  } catch (err) {
    ctx.extra.socket.close(4401, `UNAUTHENTICATED: ${(err as Error).message}`.slice(0, 120));
    return false;
  }
}

/** Past the subscription cap: an error, and a client that keeps subscribing past it is flooding and closed. */
function refuseOverCap(ctx: WsCtx): GraphQLError[] {
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
  return wsError(`A connection may hold ${WS_LIMITS.operationsPerConnection} subscriptions at once.`, 'TOO_MANY_SUBSCRIPTIONS');
}

/** Errors refusing the operation (cap, token, rate), or undefined when it may run. */
async function admitOperation(auth: Auth, ctx: WsCtx, params: Params): Promise<readonly GraphQLError[] | undefined> {
  // A closed connection's remaining messages (a flood already received) cost nothing more.
  if (ctx.extra.socket.readyState !== ctx.extra.socket.OPEN) return wsError('The connection is closing.', 'TOO_MANY_SUBSCRIPTIONS');
  if (Object.keys(ctx.subscriptions).length >= WS_LIMITS.operationsPerConnection) return refuseOverCap(ctx);
  const given = operationAuthorization(params.extensions ?? undefined);
  if (!ctx.extra.principal) {
    // An error for this operation (GraphiQL shows it), the connection stays unauthenticated.
    try {
      if (!(await bindPrincipal(auth, ctx, given))) return wsError('Too many graphql-ws connections for this token.', 'RATE_LIMITED');
    } catch (err) {
      return [asGraphQLError(err) as GraphQLError];
    }
  } else if (given !== undefined && given !== ctx.extra.authorization) {
    return wsError('This connection is authenticated with another token: open a new one to use this token.', 'UNAUTHENTICATED');
  }
  // Each operation counts against the token's rate; the auth plugin checks its role.
  if (ctx.extra.principal) {
    try {
      await auth.quotas.admit(ctx.extra.principal);
    } catch (err) {
      return [asGraphQLError(err) as GraphQLError];
    }
  }
  return undefined;
}

/** The operation parsed and validated through Yoga's envelope: execution arguments, or the errors to answer. */
async function prepareOperation(
  yoga: YogaServerInstance<Record<string, unknown>, Context>,
  ctx: WsCtx,
  params: Params,
  contextFor: (request: IncomingMessage, principal?: Principal) => Context,
) {
  const request = ctx.extra.request;
  // Not as `request`: Yoga would take the socket's GET for an HTTP GET and refuse mutations.
  const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
    ...ctx,
    req: request,
    socket: ctx.extra.socket,
    params,
  });
  let document;
  try {
    document = parse(params.query);
  } catch (err) {
    // An error message for this operation, not a closed socket.
    if (err instanceof GraphQLError)
      return [new GraphQLError(boundedMessage(err.message), { extensions: { code: 'GRAPHQL_PARSE_FAILED', ...err.extensions } })];
    throw err;
  }
  const args = {
    schema,
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
}

/** graphql-ws on `path` of `server`; close the returned WebSocketServer to end it. */
export function serveGraphqlWs(
  server: http.Server,
  path: string,
  {
    app,
    yoga,
    contextFor,
  }: {
    app: Coordinator;
    yoga: YogaServerInstance<Record<string, unknown>, Context>;
    contextFor: (request: IncomingMessage, principal?: Principal) => Context;
  },
): WebSocketServer {
  const { config } = app;
  const verifyClient = ({ req }: { req: IncomingMessage }, answer: (ok: boolean, status?: number, reason?: string) => void) =>
    answer(websocketOriginAllowed(req, config.corsOrigins, config.publicUrl), 403, 'Origin not allowed');
  const wss = new WebSocketServer({ server, path, verifyClient, maxPayload: jsonBodyLimit(config.fragmentSize) });
  useServer<Record<string, unknown> | undefined, Extra>(
    {
      onConnect: (ctx) => acceptConnection(app.auth, ctx as unknown as WsCtx),
      execute: (args) => (args.rootValue as Envelope).execute(args),
      subscribe: (args) => (args.rootValue as Envelope).subscribe(args),
      onSubscribe: async (ctx, _id, params) => {
        const refused = await admitOperation(app.auth, ctx as unknown as WsCtx, params);
        return refused ?? (await prepareOperation(yoga, ctx as unknown as WsCtx, params, contextFor));
      },
      onNext: (ctx) => {
        // A consumer that stopped reading: drop it before what we send it piles up in memory.
        if (ctx.extra.socket.bufferedAmount > WS_LIMITS.maxBufferedBytes) ctx.extra.socket.terminate();
      },
    },
    wss,
  );
  return wss;
}
