// Live cluster events over graphql-ws (the graphql-transport-ws subprotocol) on /graphql, with
// a readiness signal so callers (and tests) know events from now on will arrive. Given several
// coordinators, a socket that fails (or never opens) reconnects to the next one.
import { createClient, type Client, type ClientOptions } from 'graphql-ws';
import WebSocket from 'ws';
import { TesseraClientError } from './errors.ts';
import * as Q from './queries.ts';
import type { ClusterEvent } from './types.ts';

export interface SubscribeOptions {
  signal?: AbortSignal;
  /** Reconnections (with backoff) after a connection that once worked was lost. */
  retryAttempts?: number;
  /** `Bearer <token>`, sent in connectionParams (a WebSocket cannot carry headers from a browser). */
  authorization?: string;
}

export interface EventSubscription {
  /**
   * Resolves once the server has answered an operation sent after the subscription on the same
   * socket: graphql-ws has no acknowledgement of a subscription, and this is the nearest thing.
   */
  ready: Promise<void>;
  /** Settles when the subscription ends: resolves on close()/abort or server completion, rejects on failure. */
  done: Promise<void>;
  close(): void;
}

/** Where to connect when there are several coordinators: the current one's URL, and a way to move past one that failed. */
export interface WsEndpoints {
  current(): string;
  failed(url: string): void;
  count: number;
}

/** graphql-ws's default wait between reconnections: 2^n s plus 0.3 to 3 s of jitter. */
const backoff = (retries: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, 2 ** retries * 1000 + Math.floor(Math.random() * 2700 + 300)));

type Sink<T> = { next: (v: T) => void; error: (e: unknown) => void; complete: () => void };

/** graphql-ws reports errors as GraphQL error lists, close events or socket error events. */
function asSubscriptionError(err: unknown): TesseraClientError {
  if (err instanceof TesseraClientError) return err;
  if (Array.isArray(err) && err.length > 0) {
    const first = err[0] as { message?: string; extensions?: { code?: string } };
    return new TesseraClientError(first.extensions?.code ?? 'INTERNAL_SERVER_ERROR', first.message ?? 'subscription failed');
  }
  const e = err as { code?: number; reason?: string; message?: string; error?: Error };
  if (typeof e?.code === 'number')
    return new TesseraClientError('NETWORK_ERROR', `WebSocket closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`);
  return new TesseraClientError('NETWORK_ERROR', e?.error?.message ?? e?.message ?? String(err), { cause: err });
}

/**
 * Where and when graphql-ws (re)connects. One coordinator: there, reconnecting only after a
 * connection that once worked was lost (one that never answered is an error to report). Several:
 * the current one; a socket that fails or never opens moves to the next at once, and only after a
 * whole round of failures does graphql-ws's backoff apply. `state` is the subscription's.
 */
function reconnection(
  wsUrl: string | WsEndpoints,
  retryAttempts: number,
  state: { connectedOnce: boolean; closed: boolean },
): Pick<ClientOptions, 'url' | 'retryAttempts' | 'shouldRetry' | 'retryWait'> & { on?: { connected?: () => void; closed?: () => void } } {
  if (typeof wsUrl === 'string' || wsUrl.count < 2) {
    return {
      url: typeof wsUrl === 'string' ? wsUrl : wsUrl.current(),
      retryAttempts,
      shouldRetry: () => state.connectedOnce && !state.closed,
    };
  }
  const several = wsUrl;
  let lastUrl = '';
  // The others not yet tried since the last working connection, and whether the next attempt is a move to one of them.
  let untried = several.count - 1;
  let switching = false;
  return {
    url: () => (lastUrl = several.current()),
    // Each other coordinator is one more attempt before the caller's own retries count.
    retryAttempts: retryAttempts + untried,
    shouldRetry: () => !state.closed && (state.connectedOnce || switching),
    retryWait: async (retries) => {
      if (switching) return void (switching = false);
      await backoff(retries);
    },
    on: {
      connected: () => void (untried = several.count - 1),
      closed: () => {
        if (state.closed) return;
        several.failed(lastUrl);
        switching = untried > 0;
        if (switching) untried--;
        else untried = several.count - 1; // a whole round failed: back off, then go round again
      },
    },
  };
}

export function subscribeClusterEvents(
  wsUrl: string | WsEndpoints,
  onEvent: (event: ClusterEvent) => void,
  { signal, retryAttempts = 5, authorization }: SubscribeOptions = {},
): EventSubscription {
  let markConnected!: () => void;
  const connected = new Promise<void>((resolve) => (markConnected = resolve));
  const state = { connectedOnce: false, closed: false };
  const { on, ...where } = reconnection(wsUrl, retryAttempts, state);
  const client: Client = createClient({
    ...where,
    webSocketImpl: WebSocket,
    lazy: true,
    connectionParams: authorization ? { authorization } : {},
    on: {
      ...on,
      connected: () => {
        state.connectedOnce = true;
        on?.connected?.();
        markConnected();
      },
    },
  });

  let finish!: () => void;
  let fail!: (err: TesseraClientError) => void;
  const done = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const close = () => {
    if (state.closed) return;
    state.closed = true;
    unsubscribe();
    void client.dispose();
    finish();
  };
  const unsubscribe = client.subscribe<{ clusterEvents: ClusterEvent }>({ query: Q.CLUSTER_EVENTS }, {
    next: (result) => {
      if (result.errors?.length) return fail(asSubscriptionError(result.errors));
      if (result.data) onEvent(result.data.clusterEvents);
    },
    error: (err) => {
      if (state.closed) return;
      state.closed = true;
      void client.dispose();
      fail(asSubscriptionError(err));
    },
    complete: () => close(),
  } satisfies Sink<{ data?: { clusterEvents: ClusterEvent } | null; errors?: readonly unknown[] }>);

  const ready = Promise.race([
    connected.then(
      () =>
        new Promise<void>((resolve, reject) => {
          client.subscribe(
            { query: '{ __typename }' },
            { next: () => {}, error: (e) => reject(asSubscriptionError(e)), complete: resolve },
          );
        }),
    ),
    done.then(() => {
      throw new TesseraClientError('ABORTED', 'The subscription ended before it was ready.');
    }),
  ]);
  ready.catch(() => {}); // callers may ignore readiness; failure also shows in `done`

  if (signal?.aborted) close();
  else signal?.addEventListener('abort', close, { once: true });
  void done.catch(() => {}).finally(() => signal?.removeEventListener('abort', close));
  return { ready, done, close };
}
