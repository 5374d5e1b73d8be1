// GraphQL multipart requests (graphql-multipart-request-spec) parsed straight off the socket, in
// place of Yoga's parser (request.formData(): busboy behind a fetch-API stream and a File per
// part). Each file part stays the chunks the socket delivered (views, no copy), found with one
// native Buffer.indexOf per chunk; resolvers get them through `chunks`. Per 2 MiB fragment this
// saves the stream layers, the per-chunk events and their garbage, which showed as a third of
// the coordinator's CPU per uploaded MB next to a bare proxy.
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { BodyBudget } from '../memory-budget.ts';

export interface MultipartLimits {
  /** Bytes per file part. */
  fileSize: number;
  /** File parts per request. */
  files: number;
  /** Bytes per non-file field (operations, map). */
  fieldSize: number;
  /** Non-file fields per request (the spec needs two: operations and map). */
  fields?: number;
  /**
   * Bytes per file part given the fields received before the first file (the spec sends
   * operations first): lets a request refuse a file while reading it, at its own operation's limit.
   */
  fileSizeFor?: (fields: ReadonlyMap<string, string>) => number;
  /** The body is dropped (REQUEST_TIMEOUT) when no byte of it arrives for this long. */
  idleTimeoutMs?: number;
  /** Bytes buffered by all bodies being read at once: past it a body is refused (SERVER_BUSY) and drops what it held. */
  budget?: BodyBudget;
}

/** A file part as received: `chunks` are views of the socket's buffers, in order. */
export class ReceivedFile {
  readonly lastModified = Date.now();
  constructor(
    readonly name: string,
    readonly type: string,
    readonly chunks: readonly Buffer[],
    readonly size: number,
  ) {}

  bytes(): Promise<Uint8Array> {
    return Promise.resolve(this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size));
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    const whole = Buffer.concat(this.chunks, this.size);
    return whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.length) as ArrayBuffer;
  }
  async text(): Promise<string> {
    return Buffer.concat(this.chunks, this.size).toString('utf8');
  }
  stream(): ReadableStream<Uint8Array> {
    return Readable.toWeb(Readable.from(this.chunks)) as ReadableStream<Uint8Array>;
  }
}

class MultipartError extends Error {
  constructor(
    message: string,
    readonly tooLarge = false,
    readonly timedOut = false,
    readonly busy = false,
  ) {
    super(message);
  }
}

/** How long a timed-out body's socket stays open so that its 408 answer gets out. */
const STALLED_SOURCE_GRACE_MS = 1000;

/** The body's chunks, failing with a timeout when none arrives for `idleMs` (the source is then destroyed). */
async function* withIdleTimeout(body: AsyncIterable<Uint8Array>, idleMs: number | undefined): AsyncGenerator<Uint8Array> {
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

const CR = 13;
const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_HEADER_BYTES = 16 * 1024;
/** `form-data` and `; key=value` parameters (token or quoted string), nothing else (RFC 7578). */
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const HEADER_NAME = new RegExp(`^${TOKEN}$`);
const DISPOSITION = new RegExp(`^form-data(?:\\s*;\\s*${TOKEN}\\*?=(?:"(?:[^"\\\\]|\\\\.)*"|${TOKEN}))*\\s*;?\\s*$`, 'i');

/** The boundary of a multipart/form-data content type, or undefined. */
export function boundaryOf(contentType: string | null | undefined): string | undefined {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType ?? '');
  return m ? (m[1] ?? m[2]) : undefined;
}

function dispositionParam(header: string, param: string): string | undefined {
  const m = new RegExp(`;\\s*${param}=(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, 'i').exec(header);
  if (!m) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
}

/** The fields (as text) and file parts of a multipart/form-data body. */
export async function readMultipart(body: AsyncIterable<Uint8Array>, boundary: string, limits: MultipartLimits): Promise<{ fields: Map<string, string>; files: Map<string, ReceivedFile> }> {
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const dl = delimiter.length;
  const fields = new Map<string, string>();
  const files = new Map<string, ReceivedFile>();

  type State = 'preamble' | 'delimiter-line' | 'headers' | 'body' | 'epilogue';
  let state: State = 'preamble';
  // Bytes seen but not yet placed: a possible start of the delimiter (preamble/body), or a partial
  // delimiter line or header block. The body starts as if preceded by CRLF, so the first
  // delimiter (which has none before it) matches too.
  let carry: Buffer = CRLF;
  let part: { name: string; filename: string | undefined; type: string; chunks: Buffer[]; size: number } | undefined;
  /** Bytes per file part, settled when the first file part starts. */
  let fileSize: number | undefined;
  /** Bytes this body holds against the shared budget (released however the read ends). */
  let held = 0;

  const take = (data: Buffer) => {
    if (state !== 'body' || data.length === 0) return;
    const p = part!;
    p.size += data.length;
    if (p.filename !== undefined && p.size > fileSize!) throw new MultipartError(`File size limit exceeded: ${fileSize} bytes`, true);
    if (p.filename === undefined && p.size > limits.fieldSize) throw new MultipartError(`Field value size exceeded: ${limits.fieldSize} bytes`, true);
    if (limits.budget) {
      if (!limits.budget.tryCharge(held, data.length)) throw new MultipartError('the coordinator is buffering as many request bodies as its memory budget allows; retry later', false, false, true);
      held += data.length;
    }
    p.chunks.push(data);
  };
  const endPart = () => {
    if (state !== 'body') return;
    const p = part!;
    if (p.filename !== undefined) files.set(p.name, new ReceivedFile(p.filename, p.type, p.chunks, p.size));
    else fields.set(p.name, Buffer.concat(p.chunks, p.size).toString('utf8'));
    part = undefined;
  };
  const startPart = (headerBlock: string) => {
    let disposition = '';
    let type = 'application/octet-stream';
    for (const line of headerBlock.split('\r\n')) {
      // A control character (a bare CR or LF too) in a header line is malformed (busboy refuses it too: fuzz-tested).
      if (/[\x00-\x08\x0a-\x1f\x7f]/.test(line)) throw new MultipartError('a part header has a control character');
      const colon = line.indexOf(':');
      if (colon < 0 || !HEADER_NAME.test(line.slice(0, colon))) throw new MultipartError('a part has a malformed header line');
      const key = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (key === 'content-disposition') disposition = value;
      else if (key === 'content-type') type = value;
    }
    if (!/^form-data\b/i.test(disposition)) throw new MultipartError('a part has no Content-Disposition: form-data');
    if (!DISPOSITION.test(disposition)) throw new MultipartError('a part has a malformed Content-Disposition');
    const name = dispositionParam(disposition, 'name');
    if (name === undefined) throw new MultipartError('a part has no name');
    const filename = dispositionParam(disposition, 'filename');
    if (filename !== undefined && files.size >= limits.files) throw new MultipartError(`Files limit exceeded: ${limits.files}`, true);
    if (filename === undefined && limits.fields !== undefined && fields.size >= limits.fields) throw new MultipartError(`Fields limit exceeded: ${limits.fields}`, true);
    if (filename !== undefined && fileSize === undefined) fileSize = limits.fileSizeFor ? Math.min(limits.fileSizeFor(fields), limits.fileSize) : limits.fileSize;
    part = { name, filename, type, chunks: [], size: 0 };
  };

  /** Consumes the front of `chunk` in the current state; returns what is left. */
  const step = (chunk: Buffer): Buffer => {
    switch (state) {
      case 'epilogue':
        return Buffer.alloc(0);
      case 'preamble':
      case 'body': {
        if (carry.length > 0) {
          if (chunk.length < dl - 1) {
            // Too short to settle what `carry` starts: look at both together, as one chunk.
            const merged = Buffer.concat([carry, chunk]);
            carry = Buffer.alloc(0);
            return merged;
          }
          // A delimiter that starts in `carry` ends within its first dl bytes plus dl - 1 of the chunk.
          const held = carry.length;
          const window = Buffer.concat([carry, chunk.subarray(0, dl - 1)]);
          const at = window.indexOf(delimiter);
          if (at >= 0 && at < held) {
            take(carry.subarray(0, at));
            endPart();
            carry = Buffer.alloc(0);
            state = 'delimiter-line';
            return chunk.subarray(at + dl - held);
          }
          take(carry);
          carry = Buffer.alloc(0);
        }
        const at = chunk.indexOf(delimiter);
        if (at >= 0) {
          take(chunk.subarray(0, at));
          endPart();
          state = 'delimiter-line';
          return chunk.subarray(at + dl);
        }
        // Hold back a tail that could start the delimiter (it starts with CR).
        const from = Math.max(chunk.length - (dl - 1), 0);
        const cr = chunk.indexOf(CR, from);
        const keep = cr < 0 ? chunk.length : cr;
        take(chunk.subarray(0, keep));
        carry = chunk.subarray(keep);
        return Buffer.alloc(0);
      }
      case 'delimiter-line': {
        const line = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
        if (line.length >= 2 && line[0] === 0x2d && line[1] === 0x2d) {
          state = 'epilogue'; // "--": the closing delimiter
          carry = Buffer.alloc(0);
          return Buffer.alloc(0);
        }
        const eol = line.indexOf(CRLF);
        if (eol < 0) {
          if (line.length > 256) throw new MultipartError('a delimiter line is too long');
          carry = Buffer.from(line);
          return Buffer.alloc(0);
        }
        if (line.subarray(0, eol).toString('latin1').trim() !== '') throw new MultipartError('unexpected bytes after a delimiter');
        carry = Buffer.alloc(0);
        state = 'headers';
        return line.subarray(eol + 2);
      }
      case 'headers': {
        const block = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
        let headerEnd: number;
        let bodyStart: number;
        if (block.length >= 2 && block[0] === CR && block[1] === 0x0a) {
          headerEnd = 0; // no headers at all
          bodyStart = 2;
        } else {
          headerEnd = block.indexOf(HEADER_END);
          bodyStart = headerEnd + 4;
        }
        if (headerEnd < 0) {
          if (block.length > MAX_HEADER_BYTES) throw new MultipartError('part headers are too long');
          carry = Buffer.from(block);
          return Buffer.alloc(0);
        }
        startPart(block.subarray(0, headerEnd).toString('utf8'));
        carry = Buffer.alloc(0);
        state = 'body';
        return block.subarray(bodyStart);
      }
    }
  };

  try {
    for await (const raw of withIdleTimeout(body, limits.idleTimeoutMs)) {
      let chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
      while (chunk.length > 0) chunk = step(chunk);
    }
  } finally {
    // The budget covers bodies in flight; once parsed, the request's own limits bound what it keeps.
    limits.budget?.release(held);
  }
  if ((state as State) !== 'epilogue') throw new MultipartError('the body ended before the closing delimiter');
  return { fields, files };
}

const badMultipart = (err: unknown) => {
  if (err instanceof MultipartError && err.timedOut) {
    return new GraphQLError(`The request body stopped arriving: ${err.message}.`, { extensions: { http: { status: 408 }, code: 'REQUEST_TIMEOUT' } });
  }
  if (err instanceof MultipartError && err.busy) {
    return new GraphQLError(`The request body was dropped: ${err.message}.`, { extensions: { http: { status: 503 }, code: 'SERVER_BUSY' } });
  }
  if (err instanceof MultipartError && err.tooLarge) {
    return new GraphQLError(err.message, { extensions: { http: { status: 413 }, code: 'REQUEST_ENTITY_TOO_LARGE' } });
  }
  return new GraphQLError(`POST body sent invalid multipart data: ${(err as Error).message}`, { extensions: { http: { status: 400 }, code: 'BAD_REQUEST' } });
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

/**
 * The request parser for multipart/form-data POSTs: operations, map and files per the spec,
 * read from the Node request itself when Yoga runs on node:http (else from the fetch body).
 */
export function multipartRequests(limits: MultipartLimits): Plugin {
  return {
    onRequestParse({ request, serverContext, setRequestParser }) {
      const contentType = request.headers.get('content-type');
      if (request.method !== 'POST' || !/^multipart\/form-data(\s*;|$)/i.test(contentType?.split(',')[0] ?? '')) return;
      setRequestParser(async () => {
        const boundary = boundaryOf(contentType);
        if (!boundary) throw badMultipart(new MultipartError('no boundary in Content-Type'));
        const req = (serverContext as { req?: IncomingMessage } | undefined)?.req;
        const body: AsyncIterable<Uint8Array> | null = req && typeof req.read === 'function' && !req.readableDidRead ? req : (request.body as AsyncIterable<Uint8Array> | null);
        if (!body) throw badMultipart(new MultipartError('no body'));
        let parsed: Awaited<ReturnType<typeof readMultipart>>;
        try {
          parsed = await readMultipart(body, boundary, limits);
        } catch (err) {
          throw badMultipart(err);
        }
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
      });
    },
  };
}
