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
    const timer = setTimeout(done, STALLED_SOURCE_GRACE_MS);
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
  const end = res.end.bind(res) as () => ServerResponse;
  res.end = ((chunk?: unknown) => {
    if (chunk !== null && chunk !== undefined && typeof chunk !== 'function') res.write(chunk as string | Uint8Array);
    void dropped.then(() => end());
    return res;
  }) as ServerResponse['end'];
}
