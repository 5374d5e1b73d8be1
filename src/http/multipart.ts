// GraphQL multipart requests (graphql-multipart-request-spec) parsed straight off the socket, in
// place of Yoga's parser (request.formData(): busboy behind a fetch-API stream and a File per
// part). Each file part stays the chunks the socket delivered (views, no copy), found with one
// native Buffer.indexOf per chunk (multipart-parser.ts); resolvers get them through `chunks`. Per 2 MiB fragment this
// saves the stream layers, the per-chunk events and their garbage, which showed as a third of
// the coordinator's CPU per uploaded MB next to a bare proxy.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { MultipartError, MultipartParser, type MultipartLimits } from './multipart-parser.ts';
import type { ReceivedFile } from './received-file.ts';
import { BUSY_RETRY_AFTER_SEC, endAfterRest, STALLED_SOURCE_GRACE_MS } from './refused-body.ts';

/** The body's chunks, failing with a timeout when none arrives for `idleMs` (the source is then destroyed). */
export async function* withIdleTimeout(body: AsyncIterable<Uint8Array>, idleMs: number | undefined): AsyncGenerator<Uint8Array> {
  if (!idleMs) return yield* body;
  const it = body[Symbol.asyncIterator]();
  let finished = false;
  let timedOut = false;
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          // Stops the stalled source (the socket) rather than waiting on it, once the client has
          // had its 408 (destroying it now would cut the answer off too).
          setTimeout(() => (body as { destroy?: () => void }).destroy?.(), STALLED_SOURCE_GRACE_MS).unref();
          reject(new MultipartError(`no byte of the body arrived for ${idleMs} ms`, false, true));
        }, idleMs);
      });
      let next: IteratorResult<Uint8Array>;
      try {
        next = await Promise.race([it.next(), idle]);
      } finally {
        clearTimeout(timer);
      }
      if (next.done) {
        finished = true;
        return;
      }
      yield next.value;
    }
  } finally {
    // As a for-await over `body` would; after a timeout the return waits on the pending read,
    // which ends when the source is destroyed.
    if (!finished && timedOut) void it.return?.()?.catch(() => {});
    else if (!finished) await it.return?.();
  }
}

/** The boundary of a multipart/form-data content type, or undefined. */
export function boundaryOf(contentType: string | null | undefined): string | undefined {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType ?? '');
  return m ? (m[1] ?? m[2]) : undefined;
}

/**
 * The fields (as text) and file parts of a multipart/form-data body, and the bytes they hold
 * against `limits.budget`: the caller gives those back once it is done with the parts (a
 * refused or broken body gives back what it held at once).
 */
export async function readMultipart(
  body: AsyncIterable<Uint8Array>,
  boundary: string,
  limits: MultipartLimits,
): Promise<{ fields: Map<string, string>; files: Map<string, ReceivedFile>; held: number }> {
  const parser = new MultipartParser(boundary, limits);
  try {
    for await (const raw of withIdleTimeout(body, limits.idleTimeoutMs)) {
      parser.write(Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
    }
    if (!parser.finished) throw new MultipartError('the body ended before the closing delimiter');
  } catch (err) {
    limits.budget?.release(parser.held);
    throw err;
  }
  return { fields: parser.fields, files: parser.files, held: parser.held };
}

const badMultipart = (err: unknown) => {
  if (err instanceof MultipartError && err.timedOut) {
    return new GraphQLError(`The request body stopped arriving: ${err.message}.`, {
      extensions: { http: { status: 408 }, code: 'REQUEST_TIMEOUT' },
    });
  }
  if (err instanceof MultipartError && err.busy) {
    return new GraphQLError(`The request body was dropped: ${err.message}.`, {
      extensions: { http: { status: 503, headers: { 'retry-after': String(BUSY_RETRY_AFTER_SEC) } }, code: 'SERVER_BUSY' },
    });
  }
  if (err instanceof MultipartError && err.tooLarge) {
    return new GraphQLError(err.message, { extensions: { http: { status: 413 }, code: 'REQUEST_ENTITY_TOO_LARGE' } });
  }
  return new GraphQLError(`POST body sent invalid multipart data: ${(err as Error).message}`, {
    extensions: { http: { status: 400 }, code: 'BAD_REQUEST' },
  });
};

/** Sets `value` at a dotted path of `target` ("variables.file", "variables.files.0"), as Yoga does. */
function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let current = target;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') return;
    if (i === keys.length - 1) {
      current[key] = value;
      return;
    }
    if (!Object.hasOwn(current, key) || typeof current[key] !== 'object' || current[key] === null) current[key] = {};
    current = current[key] as Record<string, unknown>;
  }
}

/** The GraphQL operations of a parsed request, with each part the map names set at its paths. */
function operationsOf(parsed: { fields: Map<string, string>; files: Map<string, ReceivedFile> }): Record<string, unknown> {
  const operationsText = parsed.fields.get('operations');
  if (operationsText === undefined) throw new GraphQLError('Missing multipart form field "operations"');
  let operations: Record<string, unknown>;
  try {
    operations = JSON.parse(operationsText);
  } catch {
    throw new GraphQLError('Multipart form field "operations" must be a valid JSON string');
  }
  const mapText = parsed.fields.get('map');
  if (mapText !== undefined) {
    let map: Record<string, string[]>;
    try {
      map = JSON.parse(mapText);
    } catch {
      throw new GraphQLError('Multipart form field "map" must be a valid JSON string');
    }
    for (const [partName, paths] of Object.entries(map)) {
      const value = parsed.files.get(partName) ?? parsed.fields.get(partName) ?? null;
      for (const path of Array.isArray(paths) ? paths : []) setPath(operations, String(path), value);
    }
  }
  return operations;
}

/**
 * The request parser for multipart/form-data POSTs: operations, map and files per the spec,
 * read from the Node request itself when Yoga runs on node:http (else from the fetch body).
 */
export function multipartRequests(limits: MultipartLimits): Plugin {
  /** What gives back each parsed request's charge, until its result is out. */
  const releases = new WeakMap<Request, () => void>();
  return {
    onResultProcess({ request }) {
      releases.get(request)?.();
      releases.delete(request);
    },
    onRequestParse({ request, serverContext, setRequestParser }) {
      const contentType = request.headers.get('content-type');
      if (request.method !== 'POST' || !/^multipart\/form-data(\s*;|$)/i.test(contentType?.split(',')[0] ?? '')) return;
      setRequestParser(async () => {
        const boundary = boundaryOf(contentType);
        if (!boundary) throw badMultipart(new MultipartError('no boundary in Content-Type'));
        const { req, res } = (serverContext ?? {}) as { req?: IncomingMessage; res?: ServerResponse };
        const node = req && res && typeof req.read === 'function' && !req.readableDidRead ? { req, res } : undefined;
        // Read without destroying the request when the read stops early: a refused body is
        // answered, then its rest dropped (endAfterRest); destroy() stays for the idle timeout.
        const body: AsyncIterable<Uint8Array> | null = node
          ? Object.assign(node.req.iterator({ destroyOnReturn: false }), { destroy: () => node.req.destroy() })
          : (request.body as AsyncIterable<Uint8Array> | null);
        if (!body) throw badMultipart(new MultipartError('no body'));
        let parsed: Awaited<ReturnType<typeof readMultipart>>;
        try {
          parsed = await readMultipart(body, boundary, limits);
        } catch (err) {
          if (node) endAfterRest(node.req, node.res);
          throw badMultipart(err);
        }
        // The parts stay in memory until the operation is done with them (an uploadImage until it
        // is stored): so does their charge, given back once its result is out (onResultProcess),
        // not when the response closes: a subscription over SSE, or an answer its client never
        // reads, would hold it for as long as its client likes. The response's close (the client
        // gone first) gives it back too; once only.
        let held = parsed.held;
        const release = () => {
          limits.budget?.release(held);
          held = 0;
        };
        if (node && !node.res.closed) {
          node.res.once('close', release);
          releases.set(request, release);
        } else release();
        return operationsOf(parsed);
      });
    },
  };
}
