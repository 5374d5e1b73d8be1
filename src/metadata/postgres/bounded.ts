// Bounded waits on the database (--metadata-timeout). A coordinator cut off from PostgreSQL must
// answer its API calls with METADATA_UNAVAILABLE (503) within about the timeout, not wait on a
// silent server until TCP gives up (minutes). Three bounds, each for one way of waiting:
// - a live server that is slow or blocked on a lock: `statement_timeout` cancels the statement
//   (and `idle_in_transaction_session_timeout` ends a transaction whose client went silent, so its
//   locks do not block the other coordinators);
// - a silent server (packets vanish): each connection's socket is watched, and one that has had
//   bytes written and none read back for the timeout plus a margin is destroyed, which fails its
//   queries (and lets the server roll back what was in flight), instead of abandoning them on a
//   connection that stays stuck (the fenced transactions of background passes run on a pool
//   with a larger bound: connection.ts's openPool);
// - at the edge of the store, every error that says "the database did not answer" becomes a
//   TesseraError METADATA_UNAVAILABLE (503), so callers and clients see one code (the client
//   library retries it as transient).
import net from 'node:net';
import postgres from 'postgres';
import { TesseraError } from '../../errors.ts';

export const DEFAULT_METADATA_TIMEOUT_MS = 5000;

/** The silent-socket bound: past statement_timeout, so that a live server's own cancel answers first. */
export const silentSocketLimitMs = (timeoutMs: number) => timeoutMs + Math.max(500, Math.round(timeoutMs / 5));

/** What the pool's options need for the bounds: spread into postgres()'s options. */
export function boundedPoolOptions(timeoutMs: number) {
  const silentMs = silentSocketLimitMs(timeoutMs);
  return {
    // postgres.js opens through this factory and, given a socket, speaks at once (its startup
    // message waits in the socket's buffer until TCP connects): the watch covers connecting too.
    // Not over TLS, whose bytes this cannot read: statement_timeout and connect_timeout bound it.
    socket: (options: { host: string[]; port: number[]; path?: string | false; ssl?: unknown }) =>
      options.ssl ? connectTo(options) : watched(connectTo(options), silentMs),
    // Past the silent-socket bound: a connection attempt to a silent server fails with our error.
    connect_timeout: Math.ceil(silentMs / 1000) + 1,
    // postgres.js waits up to 20 s before reconnecting after failures in a row: a healed database
    // would stay unused that long. A second at most.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1) * (0.5 + Math.random() / 2),
    connection: {
      statement_timeout: timeoutMs,
      idle_in_transaction_session_timeout: timeoutMs,
    },
  };
}

let next = 0;
function connectTo({ host, port, path }: { host: string[]; port: number[]; path?: string | false }): net.Socket {
  if (path) return net.connect(path);
  // Several hosts in the URL: one after the other, as postgres.js does without a factory.
  const i = next++ % host.length;
  const socket = net.connect(port[i] ?? port[0], host[i]);
  // postgres.js reads `host` for TLS's servername.
  return Object.assign(socket, { host: host[i] });
}

/**
 * Destroys `socket` once it has had requests unanswered and no byte back for `limitMs`. Requests
 * are counted on the wire: each Sync or simple Query the client sends (and its startup message)
 * is answered by one ReadyForQuery; a Flush is answered by whatever comes next. A connection idle
 * in the pool, or a LISTEN connection waiting for notifications, has none outstanding.
 */
function watched(socket: net.Socket, limitMs: number): net.Socket {
  let outstanding = 0;
  let flushed = false;
  let since = performance.now();
  const awaiting = () => outstanding > 0 || flushed;
  const sent = walkMessages(true, (type) => {
    if (!awaiting()) since = performance.now();
    if (type === STARTUP || type === SYNC || type === QUERY) outstanding += 1;
    else if (type === FLUSH) flushed = true;
  });
  const received = walkMessages(false, (type) => {
    if (type === READY_FOR_QUERY) outstanding = Math.max(0, outstanding - 1);
  });
  const write = socket.write;
  socket.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]) {
    if (Buffer.isBuffer(chunk)) sent(chunk);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof socket.write;
  socket.on('data', (chunk: Buffer) => {
    since = performance.now();
    flushed = false;
    received(chunk);
  });
  const silentFor = () => (awaiting() ? performance.now() - since : 0);
  let rechecking = false;
  const timer = setInterval(
    () => {
      if (rechecking || silentFor() < limitMs) return;
      // After the event loop itself stalled past the limit, timers run before the poll phase that
      // would read an answer already waiting in the socket: look again once that phase has run
      // (setImmediate), so a stall of this process does not destroy a healthy connection.
      rechecking = true;
      setImmediate(() => {
        rechecking = false;
        const silent = silentFor();
        if (silent < limitMs || socket.destroyed) return;
        clearInterval(timer);
        socket.destroy(unavailable(`PostgreSQL sent nothing back for ${Math.round(silent)} ms`));
      });
    },
    Math.max(50, Math.round(limitMs / 10)),
  ).unref();
  socket.once('close', () => clearInterval(timer));
  return socket;
}

const STARTUP = -1;
const [SYNC, QUERY, FLUSH, READY_FOR_QUERY] = ['S', 'Q', 'H', 'Z'].map((c) => c.charCodeAt(0));

/**
 * A reader of one direction of the protocol: calls `on` with each message's type byte (STARTUP
 * for the untyped first message a client sends), however the messages are cut into chunks.
 */
function walkMessages(untypedFirst: boolean, on: (type: number) => void): (chunk: Buffer) => void {
  let untyped = untypedFirst;
  let skip = 0; // bytes of the current message's body still to pass
  let header: number[] = []; // a header cut between two chunks
  return (chunk) => {
    let i = 0;
    while (i < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - i);
        skip -= n;
        i += n;
        continue;
      }
      const size = untyped ? 4 : 5;
      let type: number;
      let length: number;
      if (header.length === 0 && chunk.length - i >= size) {
        // The usual case: the whole header in this chunk.
        type = untyped ? STARTUP : chunk[i]!;
        length = chunk.readUInt32BE(i + size - 4);
        i += size;
      } else {
        while (header.length < size && i < chunk.length) header.push(chunk[i++]!);
        if (header.length < size) return;
        type = untyped ? STARTUP : header[0]!;
        length = Buffer.from(header.slice(size - 4)).readUInt32BE(0);
        header = [];
      }
      on(type);
      skip = length - 4;
      untyped = false;
    }
  };
}

function unavailable(why: string, cause?: unknown): TesseraError {
  const err = new TesseraError('METADATA_UNAVAILABLE', `The metadata database did not answer: ${why}.`);
  if (cause !== undefined) err.cause = cause;
  return err;
}

/** postgres.js's and the socket's codes for a connection that failed, closed or timed out. */
const CONNECTION_CODES = new Set([
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** SQLSTATEs of a server that cancelled, is going away, or will not take more connections. */
const UNAVAILABLE_STATES = /^(08...|57014|57P0[1-3]|53300|25P03)$/;

/** `err` as METADATA_UNAVAILABLE when it says the database did not answer; unchanged otherwise. */
export function asUnavailable(err: unknown): unknown {
  if (err instanceof TesseraError) return err;
  if (err instanceof postgres.PostgresError) {
    if (!UNAVAILABLE_STATES.test(err.code)) return err;
    return unavailable(err.code === '57014' ? 'a statement ran past --metadata-timeout and was cancelled' : err.message, err);
  }
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && CONNECTION_CODES.has(code) ? unavailable(`${code}: ${(err as Error).message}`, err) : err;
}

/**
 * `table` with every method's failures passed through asUnavailable (synchronous throws and
 * rejected promises alike); anything else about it unchanged.
 */
export function reportingUnavailable<T extends object>(table: T): T {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(table, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      if (!wrapped.has(key)) {
        wrapped.set(key, function (this: unknown, ...args: unknown[]) {
          try {
            const answer: unknown = Reflect.apply(value, this === receiver ? target : this, args);
            return answer instanceof Promise ? answer.catch((err: unknown) => Promise.reject(asUnavailable(err))) : answer;
          } catch (err) {
            throw asUnavailable(err);
          }
        });
      }
      return wrapped.get(key);
    },
  });
}
