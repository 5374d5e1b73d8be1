// A GET whose large body is read straight off the socket into large buffers (the CLI's download
// of an image). node:http reads 64 KiB at a time and runs every read through its parser, a stream
// and an iterator: for a large body that costs about as much CPU as hashing it. Here the kernel
// fills up to 1 MiB per read, and each read is handed to the caller as it is, in order, once. Only
// the plain shape our servers answer with is read this way (HTTP/1.x, Content-Length, no
// Transfer-Encoding); anything else is 'unsupported' and the caller sends the GET through
// node:http instead. Errors are the socket's own (the caller names them in its terms); an abort
// rejects with the signal's reason.
import net from 'node:net';

export interface RawTarget {
  hostname: string;
  port: number;
  /** The Host header: host[:port] as in the URL. */
  host: string;
  /** The request target, already percent-encoded. */
  path: string;
  headers: Record<string, string>;
  /** No bytes either way for this long fails the request. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Where a GET to `base` (an http: URL) connects, and its Host header. */
export const rawTargetOf = (base: URL) => ({
  hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'),
  port: Number(base.port || 80),
  host: base.host,
});

export interface RawResponse {
  status: number;
  /** Header names lowercased; a repeated header's values joined with ", ". */
  headers: Record<string, string>;
  /** Content-Length: the body is exactly this many bytes. */
  length: number;
  /**
   * Hands the body to `onChunk` in order, each chunk a buffer the caller may keep; while the
   * promise `onChunk` returns is pending, the socket is not read (TCP holds the sender back).
   * Resolves once every byte went through; rejects (and closes) on a short body, an idle timeout,
   * an abort or a throw of `onChunk`.
   */
  pipeTo(onChunk: (chunk: Buffer) => Promise<unknown> | undefined): Promise<void>;
  /** The whole body as one buffer (for small error bodies). */
  readAll(): Promise<Buffer>;
  /** Closes the connection; the body is not read. */
  destroy(): void;
}

/** Bytes the kernel may fill per read; a buffer is used up by consecutive reads before a new one is taken. */
const READ_SIZE = 1024 * 1024;
/** A buffer's rest smaller than this is not offered to a read: a fresh buffer is. */
const MIN_READ = 64 * 1024;
/** readAll's limit: it reads error answers, which are a few hundred bytes of JSON. */
const MAX_READ_ALL = 1024 * 1024;
/** A response head larger than this is not one of ours. */
const MAX_HEAD = 64 * 1024;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const REQUEST_TARGET = /^\/[\x21-\x7e]*$/;

/** The request head, or undefined when a header or the path cannot be sent as given (node:http then says why). */
function requestHead({ host, path, headers }: RawTarget): string | undefined {
  if (!REQUEST_TARGET.test(path) || !FIELD_VALUE.test(host)) return undefined;
  let head = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) return undefined;
    if (/^(host|connection|content-length|transfer-encoding)$/i.test(name)) continue;
    head += `${name}: ${value}\r\n`;
  }
  return `${head}Connection: close\r\n\r\n`;
}

/** Status and headers of a response head (without its blank line); undefined when it is not plain HTTP/1.x framed by Content-Length. */
function parseHead(text: string): { status: number; headers: Record<string, string>; length: number } | undefined {
  const [statusLine, ...lines] = text.split('\r\n');
  const status = /^HTTP\/1\.[01] ([1-9]\d\d)(?: |$)/.exec(statusLine);
  if (!status || status[1].startsWith('1')) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  if ('transfer-encoding' in headers || !/^\d{1,15}$/.test(headers['content-length'] ?? '')) return undefined;
  return { status: Number(status[1]), headers, length: Number(headers['content-length']) };
}

type Consumer = (chunk: Buffer) => Promise<unknown> | undefined;
type Head = { status: number; headers: Record<string, string>; length: number };

/** One GET on its own connection: the head, then the body handed to one consumer. */
class RawExchange {
  private readonly socket: net.Socket;
  private buffer = Buffer.allocUnsafe(READ_SIZE);
  /** The head's bytes so far; undefined once it is parsed. */
  private head: Buffer | undefined = Buffer.alloc(0);
  private response: RawResponse | undefined;
  private remaining = 0;
  private consumer: Consumer | undefined;
  /** Body bytes that came in with the head, before a consumer was there. */
  private early: Buffer[] = [];
  private body: { resolve: () => void; reject: (err: unknown) => void } | undefined;
  private failure: unknown;
  private readonly onAbort = () => this.fail(abortReason(this.target.signal));

  constructor(
    private readonly target: RawTarget,
    request: string,
    private readonly answered: { resolve: (r: RawResponse | 'unsupported') => void; reject: (err: unknown) => void },
  ) {
    this.socket = net.connect({
      host: target.hostname,
      port: target.port,
      onread: {
        // The rest of the current buffer while it is large enough: the chunks handed out are
        // disjoint slices of it, so nothing is copied and nothing is read into twice.
        buffer: () => (this.buffer.length >= MIN_READ ? this.buffer : (this.buffer = Buffer.allocUnsafe(READ_SIZE))),
        callback: (nread, into) => this.onRead(nread, into),
      },
    });
    const { socket } = this;
    socket.setNoDelay(true);
    socket.setTimeout(target.timeoutMs, () => this.fail(new Error(`no answer from ${target.host} within ${target.timeoutMs} ms`)));
    socket.once('connect', () => socket.write(request));
    socket.once('error', (err) => this.fail(err));
    // A paused socket may see the server's FIN as 'end' without a 'close'.
    socket.once('end', () => this.closed());
    socket.once('close', () => this.closed());
    target.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private onRead(nread: number, into: Uint8Array): boolean {
    const bytes = (into as Buffer).subarray(0, nread);
    if (into === this.buffer) this.buffer = this.buffer.subarray(nread);
    if (this.failure !== undefined) return false;
    if (!this.head) this.deliver(bytes);
    else if (this.onHead(bytes)) this.socket.pause(); // nothing more is read until the caller reads the body
    return true;
  }

  /** Adds bytes to the head; true once a response was made of it. */
  private onHead(bytes: Buffer): boolean {
    const head = (this.head = Buffer.concat([this.head!, bytes]));
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > MAX_HEAD) this.fail(new Error(`a response head larger than ${MAX_HEAD} bytes from ${this.target.host}`));
      return false;
    }
    const parsed = parseHead(head.toString('latin1', 0, end));
    const rest = head.subarray(end + 4);
    this.head = undefined;
    if (!parsed) {
      this.finish();
      this.answered.resolve('unsupported');
      return false;
    }
    this.remaining = parsed.length;
    if (rest.length > 0) this.early.push(rest);
    this.response = this.makeResponse(parsed);
    this.answered.resolve(this.response);
    return true;
  }

  private makeResponse(head: Head): RawResponse {
    const pipeTo = (onChunk: Consumer) => this.pipeTo(onChunk);
    return {
      ...head,
      pipeTo,
      readAll: async () => {
        // Only error answers are read whole: a body past the cap is not one of ours.
        if (head.length > MAX_READ_ALL) {
          const tooLarge = new Error(`an answer body of ${head.length} bytes is over ${MAX_READ_ALL}`);
          this.fail(tooLarge);
          throw tooLarge;
        }
        const chunks: Buffer[] = [];
        await pipeTo((c) => void chunks.push(c));
        return Buffer.concat(chunks);
      },
      destroy: () => this.fail(new Error('the body was not read')),
    };
  }

  private pipeTo(onChunk: Consumer): Promise<void> {
    if (this.consumer) throw new Error('the body is read once');
    this.consumer = onChunk;
    return new Promise<void>((resolve, reject) => {
      this.body = { resolve, reject };
      if (this.failure !== undefined) return reject(this.failure);
      const early = this.early;
      this.early = [];
      if (this.remaining === 0) return this.deliver(Buffer.alloc(0));
      this.socket.resume();
      for (const chunk of early) this.deliver(chunk);
    });
  }

  /** Gives body bytes to the consumer; pauses the socket while it asks to wait. */
  private deliver(chunk: Buffer): void {
    const take = chunk.length > this.remaining ? chunk.subarray(0, this.remaining) : chunk;
    this.remaining -= take.length;
    let wait: Promise<unknown> | undefined;
    try {
      wait = take.length > 0 ? this.consumer!(take) : undefined;
    } catch (err) {
      return this.fail(err);
    }
    if (!wait) return this.maybeDone();
    this.socket.pause();
    wait.then(
      () => {
        if (this.failure !== undefined) return;
        if (this.remaining > 0) this.socket.resume();
        this.maybeDone();
      },
      (err) => this.fail(err),
    );
  }

  private maybeDone(): void {
    if (this.remaining > 0) return;
    this.finish();
    this.body?.resolve();
  }

  private finish(): void {
    this.socket.destroy();
    this.target.signal?.removeEventListener('abort', this.onAbort);
  }

  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.finish();
    if (!this.response) this.answered.reject(this.failure);
    this.body?.reject(this.failure);
  }

  private closed(): void {
    const { response, remaining, target } = this;
    if (this.failure !== undefined || (response && remaining === 0)) return;
    this.fail(
      new Error(
        response
          ? `the connection to ${target.host} closed ${remaining} bytes short of the ${response.length} announced`
          : `the connection to ${target.host} closed before an answer`,
      ),
    );
  }
}

/** The signal's reason when it is an Error, else an AbortError. */
function abortReason(signal?: AbortSignal): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : Object.assign(new Error('The operation was aborted.'), { name: 'AbortError' });
}

/**
 * Sends the GET and resolves once the response head arrived: the response, or 'unsupported'
 * (the connection is closed then).
 */
export function rawGet(target: RawTarget): Promise<RawResponse | 'unsupported'> {
  const request = requestHead(target);
  if (request === undefined) return Promise.resolve('unsupported');
  if (target.signal?.aborted) return Promise.reject(abortReason(target.signal));
  return new Promise((resolve, reject) => new RawExchange(target, request, { resolve, reject }));
}
