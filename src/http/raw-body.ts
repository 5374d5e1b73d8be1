// What the raw-body routes (PUT /images/{name}, PUT /uploads/{id}/fragments/{index}) share on
// plain node:http: the body read as it arrives, within its limits, and the {code, message} answers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody, TesseraError } from '../errors.ts';
import type { BodyBudget } from '../memory-budget.ts';
import { BUSY_RETRY_AFTER_SEC, endAfterRest, STALLED_SOURCE_GRACE_MS } from './refused-body.ts';

/**
 * A raw-body route's failure as {code, message} with its status; rethrows what is not a
 * TesseraError (a fault: the caller answers 500).
 */
export function answerRefusal(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  // The client went away mid-body: nothing was stored and nobody is left to answer; not a fault.
  if (!req.complete && (req.destroyed || (err as NodeJS.ErrnoException)?.code === 'ECONNRESET')) return void res.destroy();
  const known = err instanceof TesseraError ? err : undefined;
  if (!known) throw err;
  const extra = (known.extensions.http as { headers?: Record<string, string> } | undefined)?.headers ?? {};
  // Refused before the body was read, or while it arrived: the answer gets out, then the rest is dropped.
  if (!req.readableEnded) endAfterRest(req, res);
  send(res, known.status, errorBody(known), extra);
}

/**
 * The body's chunks as they arrived (no join), within `maxBytes` and the shared budget (charged to
 * `body.held`; `tooLarge` the refusal past `maxBytes`); REQUEST_TIMEOUT when no byte arrives for
 * `idleTimeoutMs` (0: none). Read off the stream's 'data' events with one idle timer re-armed per
 * chunk: an async iterator with a timer and a Promise.race per 64 KiB chunk cost about 5% of the
 * coordinator's CPU on a chunked upload.
 * A refusal part-way stops buffering and gives back the charge at once, but leaves the request
 * open for its answer (answerRefusal drops the rest); a stalled one is destroyed once its 408 has
 * had STALLED_SOURCE_GRACE_MS to get out.
 */
export function readBody(
  req: IncomingMessage,
  maxBytes: number,
  budget: BodyBudget,
  idleTimeoutMs: number,
  body: { held: number },
  tooLarge: (maxBytes: number) => TesseraError = bodyTooLarge,
): Promise<Buffer[]> {
  // The client may have gone (or the body been read) during the awaits before this call: a
  // destroyed or ended request emits nothing more, so waiting would last until the idle timer.
  if (req.readableEnded) return Promise.resolve([]);
  if (req.destroyed || req.readableAborted) return Promise.reject(clientGone());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const settle = (err?: unknown) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err === undefined) resolve(chunks);
      else reject(err);
    };
    const refuse = (err: TesseraError) => {
      // Without a 'data' listener the flowing request drops what arrives until the answer is sent.
      settle(err);
      chunks.length = 0;
    };
    const onData = (chunk: Buffer) => {
      if (body.held + chunk.length > maxBytes) return refuse(tooLarge(maxBytes));
      if (!budget.tryCharge(body.held, chunk.length)) return refuse(serverBusy());
      body.held += chunk.length;
      chunks.push(chunk);
      timer?.refresh();
    };
    const onEnd = () => settle();
    const onError = (err: Error) => settle(err);
    // Destroyed without an error (the server closing it): not a whole body.
    const onClose = () => settle(clientGone());
    req.on('data', onData).once('end', onEnd).once('error', onError).once('close', onClose);
    if (idleTimeoutMs > 0) {
      timer = setTimeout(() => {
        settle(
          new TesseraError('REQUEST_TIMEOUT', `The request body stopped arriving: no byte of the body arrived for ${idleTimeoutMs} ms.`),
        );
        // Stops the stalled source once the client has had its 408 (destroying it now would cut the answer off too).
        setTimeout(() => req.destroy(), STALLED_SOURCE_GRACE_MS).unref();
      }, idleTimeoutMs);
    }
  });
}

/** A request closed before its body ended: as node:http's ECONNRESET (answerRefusal answers nobody). */
const clientGone = () => Object.assign(new Error('the request closed before its body ended'), { code: 'ECONNRESET' });

const serverBusy = () => new TesseraError('SERVER_BUSY', undefined, { http: { headers: { 'retry-after': String(BUSY_RETRY_AFTER_SEC) } } });

const bodyTooLarge = (maxBytes: number) => new TesseraError('PAYLOAD_TOO_LARGE', `The body passes ${maxBytes} bytes.`);

export function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
  res
    .writeHead(status, {
      ...headers,
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    })
    .end(body);
}
