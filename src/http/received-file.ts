// A file part of a multipart request as the parser received it: the socket's chunks, uncopied,
// behind the File methods resolvers and Yoga call.
import { Readable } from 'node:stream';

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
