// A request refused while its body is still arriving (the shared body budget is full, the body is
// too large, malformed or stalled) or before it was read: the client still gets the answer.
// Closing the connection at once resets it under a client that is still sending (ECONNRESET, the
// answer lost with it), so the answer goes out whole at once, and the connection is ended only
// once the rest of the body has been read and dropped (never buffered), as a web server's
// lingering close does: up to the body's end, REST_MAX_BYTES or STALLED_SOURCE_GRACE_MS.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** How long a refused or timed-out body's socket stays open so that its answer gets out. */
export const STALLED_SOURCE_GRACE_MS = 1000;

/** The most of a refused body's rest read (and dropped) before the connection is closed anyway. */
const REST_MAX_BYTES = 64 * 1024 * 1024;

/** Retry-After (seconds) of a body refused for the shared budget: the bodies holding it are stored within seconds. */
export const BUSY_RETRY_AFTER_SEC = 1;

/** Resolves once `req`'s body has ended, or REST_MAX_BYTES more of it or STALLED_SOURCE_GRACE_MS have passed; its bytes are dropped. */
function dropRest(req: IncomingMessage): Promise<void> {
  if (req.readableEnded || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let left = REST_MAX_BYTES;
    const done = () => {
      clearTimeout(timer);
      req.off('data', onData).off('end', done).off('close', done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      left -= chunk.length;
      if (left < 0) done();
    };
    // Unref'd: a refused client does not hold up the coordinator's shutdown.
    const timer = setTimeout(done, STALLED_SOURCE_GRACE_MS).unref();
    req.on('data', onData).once('end', done).once('close', done);
    req.resume();
  });
}

/**
 * Makes `res` answer with Connection: close and end only once `req`'s rest is dropped: what is
 * passed to its end() (the answer's body, sent with its Content-Length) is written at once. For
 * the raw-body routes and for Yoga's answer to a refused multipart body alike.
 */
export function endAfterRest(req: IncomingMessage, res: ServerResponse): void {
  // A body left unread would be taken for the next request: this connection takes no other.
  if (!res.headersSent) res.setHeader('connection', 'close');
  const dropped = dropRest(req);
  const end = res.end.bind(res) as (callback?: () => void) => ServerResponse;
  let ended = false;
  res.end = ((...args: unknown[]) => {
    // end([chunk[, encoding]][, callback]), as ServerResponse takes it; a second call does nothing.
    const callback = typeof args.at(-1) === 'function' ? (args.pop() as () => void) : undefined;
    if (ended) return res;
    ended = true;
    const [chunk, encoding] = args as [string | Uint8Array | null | undefined, BufferEncoding | null | undefined];
    if (chunk !== null && chunk !== undefined) res.write(chunk, encoding ?? 'utf8');
    void dropped.then(() => end(callback));
    return res;
  }) as ServerResponse['end'];
}
