// Live cluster events over graphql-ws (the graphql-transport-ws subprotocol) on /graphql, with
// a readiness signal so callers (and tests) know events from now on will arrive.
import { createClient, type Client } from 'graphql-ws';
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

export function subscribeClusterEvents(
  wsUrl: string,
  onEvent: (event: ClusterEvent) => void,
  { signal, retryAttempts = 5, authorization }: SubscribeOptions = {},
): EventSubscription {
  let connectedOnce = false;
  let closed = false;
  let markConnected!: () => void;
  const connected = new Promise<void>((resolve) => (markConnected = resolve));
  const client: Client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    lazy: true,
    retryAttempts,
    connectionParams: authorization ? { authorization } : {},
    // A coordinator that never answered is an error to report, not something to wait for.
    shouldRetry: () => connectedOnce && !closed,
    on: {
      connected: () => {
        connectedOnce = true;
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
    if (closed) return;
    closed = true;
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
      if (closed) return;
      closed = true;
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
