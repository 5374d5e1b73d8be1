// The multipart/form-data state machine: fed the body's chunks in order, it finds delimiters with
// one native Buffer.indexOf per chunk and keeps each file part as views of those chunks (no copy).
// Limits are checked as bytes arrive, so an oversized part is refused while it is being read.
import type { BodyBudget } from '../memory-budget.ts';
import { ReceivedFile } from './received-file.ts';

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

export class MultipartError extends Error {
  constructor(
    message: string,
    readonly tooLarge = false,
    readonly timedOut = false,
    readonly busy = false,
  ) {
    super(message);
  }
}

const CR = 13;
const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
const NOTHING = Buffer.alloc(0);
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_DELIMITER_LINE_BYTES = 256;
/** `form-data` and `; key=value` parameters (token or quoted string), nothing else (RFC 7578). */
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const HEADER_NAME = new RegExp(`^${TOKEN}$`);
const DISPOSITION = new RegExp(`^form-data(?:\\s*;\\s*${TOKEN}\\*?=(?:"(?:[^"\\\\]|\\\\.)*"|${TOKEN}))*\\s*;?\\s*$`, 'i');

function dispositionParam(header: string, param: string): string | undefined {
  const m = new RegExp(`;\\s*${param}=(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]*))`, 'i').exec(header);
  if (!m) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
}

/** A part's Content-Disposition and Content-Type from its header block; malformed lines throw. */
function partHeaders(headerBlock: string): { disposition: string; type: string } {
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
  return { disposition, type };
}

type State = 'preamble' | 'delimiter-line' | 'headers' | 'body' | 'epilogue';

interface OpenPart {
  name: string;
  filename: string | undefined;
  type: string;
  chunks: Buffer[];
  size: number;
}

export class MultipartParser {
  readonly fields = new Map<string, string>();
  readonly files = new Map<string, ReceivedFile>();
  /** Bytes this body holds against the shared budget (given back by readMultipart if the read fails, else once its request is done). */
  held = 0;
  private state: State = 'preamble';
  // Bytes seen but not yet placed: a possible start of the delimiter (preamble/body), or a partial
  // delimiter line or header block. The body starts as if preceded by CRLF, so the first
  // delimiter (which has none before it) matches too.
  private carry: Buffer = CRLF;
  private part: OpenPart | undefined;
  /** Bytes per file part, settled when the first file part starts. */
  private fileSize: number | undefined;
  private readonly delimiter: Buffer;

  constructor(
    boundary: string,
    private readonly limits: MultipartLimits,
  ) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`);
  }

  /** Consumes the next chunk of the body. */
  write(chunk: Buffer): void {
    while (chunk.length > 0) chunk = this.step(chunk);
  }

  /** Whether the closing delimiter has been read. */
  get finished(): boolean {
    return this.state === 'epilogue';
  }

  /** Consumes the front of `chunk` in the current state; returns what is left. */
  private step(chunk: Buffer): Buffer {
    switch (this.state) {
      case 'epilogue':
        return NOTHING;
      case 'preamble':
      case 'body':
        return this.scanContent(chunk);
      case 'delimiter-line':
        return this.readDelimiterLine(chunk);
      case 'headers':
        return this.readHeaders(chunk);
    }
  }

  /** Preamble or part content up to the next delimiter. */
  private scanContent(chunk: Buffer): Buffer {
    const delimiter = this.delimiter;
    const dl = delimiter.length;
    if (this.carry.length > 0) {
      if (chunk.length < dl - 1) {
        // Too short to settle what `carry` starts: look at both together, as one chunk.
        const merged = Buffer.concat([this.carry, chunk]);
        this.carry = NOTHING;
        return merged;
      }
      // A delimiter that starts in `carry` ends within its first dl bytes plus dl - 1 of the chunk.
      const held = this.carry.length;
      const at = Buffer.concat([this.carry, chunk.subarray(0, dl - 1)]).indexOf(delimiter);
      if (at >= 0 && at < held) {
        this.take(this.carry.subarray(0, at));
        this.carry = NOTHING;
        this.toDelimiterLine();
        return chunk.subarray(at + dl - held);
      }
      this.take(this.carry);
      this.carry = NOTHING;
    }
    const at = chunk.indexOf(delimiter);
    if (at >= 0) {
      this.take(chunk.subarray(0, at));
      this.toDelimiterLine();
      return chunk.subarray(at + dl);
    }
    // Hold back a tail that could start the delimiter (it starts with CR).
    const cr = chunk.indexOf(CR, Math.max(chunk.length - (dl - 1), 0));
    const keep = cr < 0 ? chunk.length : cr;
    this.take(chunk.subarray(0, keep));
    this.carry = chunk.subarray(keep);
    return NOTHING;
  }

  /** The rest of a delimiter's line: "--" closes the body, else CRLF starts a part's headers. */
  private readDelimiterLine(chunk: Buffer): Buffer {
    const line = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    if (line.length >= 2 && line[0] === 0x2d && line[1] === 0x2d) {
      this.state = 'epilogue'; // "--": the closing delimiter
      this.carry = NOTHING;
      return NOTHING;
    }
    const eol = line.indexOf(CRLF);
    if (eol < 0) {
      if (line.length > MAX_DELIMITER_LINE_BYTES) throw new MultipartError('a delimiter line is too long');
      this.carry = Buffer.from(line);
      return NOTHING;
    }
    if (line.subarray(0, eol).toString('latin1').trim() !== '') throw new MultipartError('unexpected bytes after a delimiter');
    this.carry = NOTHING;
    this.state = 'headers';
    return line.subarray(eol + 2);
  }

  /** A part's header block, up to the blank line that starts its content. */
  private readHeaders(chunk: Buffer): Buffer {
    const block = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    const noHeaders = block.length >= 2 && block[0] === CR && block[1] === 0x0a;
    const headerEnd = noHeaders ? 0 : block.indexOf(HEADER_END);
    if (headerEnd < 0) {
      if (block.length > MAX_HEADER_BYTES) throw new MultipartError('part headers are too long');
      this.carry = Buffer.from(block);
      return NOTHING;
    }
    this.startPart(block.subarray(0, headerEnd).toString('utf8'));
    this.carry = NOTHING;
    this.state = 'body';
    return block.subarray(noHeaders ? 2 : headerEnd + 4);
  }

  /** Adds content to the open part (content before the first delimiter is dropped). */
  private take(data: Buffer): void {
    if (this.state !== 'body' || data.length === 0) return;
    const p = this.part!;
    p.size += data.length;
    if (p.filename !== undefined && p.size > this.fileSize!)
      throw new MultipartError(`File size limit exceeded: ${this.fileSize} bytes`, true);
    if (p.filename === undefined && p.size > this.limits.fieldSize)
      throw new MultipartError(`Field value size exceeded: ${this.limits.fieldSize} bytes`, true);
    const budget = this.limits.budget;
    if (budget) {
      if (!budget.tryCharge(this.held, data.length))
        throw new MultipartError(
          'the coordinator is buffering as many request bodies as its memory budget allows; retry later',
          false,
          false,
          true,
        );
      this.held += data.length;
    }
    p.chunks.push(data);
  }

  /** A delimiter was found: the open part (if any) is complete. */
  private toDelimiterLine(): void {
    const p = this.part;
    if (this.state === 'body' && p) {
      if (p.filename !== undefined) this.files.set(p.name, new ReceivedFile(p.filename, p.type, p.chunks, p.size));
      else this.fields.set(p.name, Buffer.concat(p.chunks, p.size).toString('utf8'));
      this.part = undefined;
    }
    this.state = 'delimiter-line';
  }

  private startPart(headerBlock: string): void {
    const { disposition, type } = partHeaders(headerBlock);
    const { limits } = this;
    const name = dispositionParam(disposition, 'name');
    if (name === undefined) throw new MultipartError('a part has no name');
    const filename = dispositionParam(disposition, 'filename');
    if (filename !== undefined && this.files.size >= limits.files) throw new MultipartError(`Files limit exceeded: ${limits.files}`, true);
    if (filename === undefined && limits.fields !== undefined && this.fields.size >= limits.fields)
      throw new MultipartError(`Fields limit exceeded: ${limits.fields}`, true);
    if (filename !== undefined && this.fileSize === undefined)
      this.fileSize = limits.fileSizeFor ? Math.min(limits.fileSizeFor(this.fields), limits.fileSize) : limits.fileSize;
    this.part = { name, filename, type, chunks: [], size: 0 };
  }
}
