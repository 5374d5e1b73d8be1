// GraphQL subscriptions from a test, over both transports the coordinator serves on /graphql:
// Server-Sent Events (a plain fetch, parsing `event:` / `data:` blocks) and graphql-ws (its
// client on the `ws` package). Both collect every result's root field for the test to wait on.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { authHeaders } from './tokens.ts';

export type Transport = 'sse' | 'ws';

export interface Subscription<T> {
  transport: Transport;
  /** The root field's value of every result received so far, in order. */
  readonly received: readonly T[];
  /** The first received item (past or future) that matches; rejects after `timeoutMs`. */
  waitFor(match: (item: T) => boolean, what?: string, timeoutMs?: number): Promise<T>;
  /** Resolves once `check(received)` holds; rejects after `timeoutMs`. */
  until(check: (received: readonly T[]) => boolean, what?: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_WAIT_MS = 20_000;

/** Closing must never hang a test's afterAll: give up waiting after `ms`. */
const atMost = (work: Promise<unknown> | unknown, ms = 5_000) =>
  Promise.race([Promise.resolve(work).catch(() => undefined), new Promise((r) => setTimeout(r, ms).unref())]);

/** Collects payloads and wakes waiters; a transport error or an error payload fails them at once. */
function collector<T>(transport: Transport) {
  const received: T[] = [];
  let failure: Error | undefined;
  let ended = false;
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((w) => w());

  function until(check: (received: readonly T[]) => boolean, what = 'condition', timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(poll);
        reject(
          new Error(
            `${transport}: ${what} not seen within ${timeoutMs} ms; received ${received.length}: ${JSON.stringify(received.slice(-5))}`,
          ),
        );
      }, timeoutMs);
      function poll() {
        const ok = check(received);
        if (!ok && !failure && !ended) return;
        clearTimeout(timer);
        waiters.delete(poll);
        if (ok) resolve();
        else reject(failure ?? new Error(`${transport}: the subscription ended before ${what}`));
      }
      waiters.add(poll);
      poll();
    });
  }

  return {
    received: received as readonly T[],
    push(result: { data?: unknown; errors?: readonly { message: string }[] }) {
      if (result.errors?.length) failure ??= new Error(`${transport}: ${result.errors.map((e) => e.message).join('; ')}`);
      // A subscription has exactly one root field: collect its value.
      else if (result.data) received.push(Object.values(result.data)[0] as T);
      wake();
    },
    fail(err: unknown) {
      failure ??= err instanceof Error ? err : new Error(`${transport}: ${String((err as { reason?: string })?.reason ?? err)}`);
      wake();
    },
    end() {
      ended = true;
      wake();
    },
    until,
    async waitFor(match: (item: T) => boolean, what = 'a matching item', timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
      await until((all) => all.some(match), what, timeoutMs);
      return received.find(match)!;
    },
  };
}

/** Who a subscription authenticates as: the coordinator's admin token (tokens.ts) unless given; '' for none. */
export interface SubscribeAuth {
  authorization?: string;
}

const authorizationFor = (baseUrl: string, auth: SubscribeAuth) => auth.authorization ?? authHeaders(baseUrl).authorization ?? '';

/** One subscription over SSE: POST /graphql with `Accept: text/event-stream`. */
export async function subscribeSse<T = any>(
  baseUrl: string,
  query: string,
  variables: Record<string, unknown> = {},
  auth: SubscribeAuth = {},
): Promise<Subscription<T>> {
  const abort = new AbortController();
  const authorization = authorizationFor(baseUrl, auth);
  const res = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization },
    body: JSON.stringify({ query, variables }),
    signal: abort.signal,
  });
  if (res.status !== 200 || !res.headers.get('content-type')?.startsWith('text/event-stream')) {
    const body = await res.text();
    throw new Error(`SSE subscription answered ${res.status} ${res.headers.get('content-type')}: ${body}`);
  }
  const c = collector<T>('sse');

  // An SSE message is a block of `field: value` lines ended by a blank line.
  const handle = (block: string) => {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line === '' || line.startsWith(':')) continue; // comments are keep-alive pings
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (event === 'complete') c.end();
    else if ((event === 'next' || event === 'message') && data.length > 0) c.push(JSON.parse(data.join('\n')));
  };

  // Yoga opens the stream with a ":" ping and pulls the first result (which subscribes to the
  // event bus) once that ping is consumed: the first bytes mean the subscription is in place.
  let started!: () => void;
  const firstBytes = new Promise<void>((r) => (started = r));
  const reading = (async () => {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        started();
        buffer += value;
        let end: RegExpExecArray | null;
        while ((end = /\r?\n\r?\n/.exec(buffer))) {
          handle(buffer.slice(0, end.index));
          buffer = buffer.slice(end.index + end[0].length);
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) c.fail(err);
    } finally {
      started();
      c.end();
    }
  })();
  await atMost(firstBytes, 10_000);

  return {
    transport: 'sse',
    received: c.received,
    waitFor: c.waitFor,
    until: c.until,
    async close() {
      abort.abort();
      await atMost(reading);
    },
  };
}

/** One subscription over graphql-ws (`graphql-transport-ws`) on ws://host/graphql. */
export async function subscribeWs<T = any>(
  baseUrl: string,
  query: string,
  variables: Record<string, unknown> = {},
  auth: SubscribeAuth = {},
): Promise<Subscription<T>> {
  const c = collector<T>('ws');
  const authorization = authorizationFor(baseUrl, auth);
  const client = createClient({
    url: `${baseUrl.replace(/^http/, 'ws')}/graphql`,
    connectionParams: authorization ? { authorization } : {},
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    onNonLazyError: (err) => c.fail(err),
  });
  // Resolves once the server acknowledged the connection (or it failed).
  const connected = new Promise<void>((resolve, reject) => {
    const offConnected = client.on('connected', () => {
      offConnected();
      resolve();
    });
    const offError = client.on('error', (err) => {
      offError();
      reject(err instanceof Error ? err : new Error('graphql-ws connection failed'));
    });
  });
  const unsubscribe = client.subscribe<T>(
    { query, variables },
    { next: (result) => c.push(result), error: (err) => c.fail(err), complete: () => c.end() },
  );
  await connected;
  return {
    transport: 'ws',
    received: c.received,
    waitFor: c.waitFor,
    until: c.until,
    async close() {
      unsubscribe();
      await atMost(client.dispose());
    },
  };
}

export const subscribe = <T = any>(
  transport: Transport,
  baseUrl: string,
  query: string,
  variables: Record<string, unknown> = {},
  auth: SubscribeAuth = {},
) => (transport === 'sse' ? subscribeSse<T>(baseUrl, query, variables, auth) : subscribeWs<T>(baseUrl, query, variables, auth));
