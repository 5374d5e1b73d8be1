// A raw HTTP/1.1 request on a socket that sends part of its body and then waits: what a client
// sees when the server refuses the body while it is still arriving (its answer, or a closed or
// reset connection with none), read off the socket with no HTTP client in between to hide it.
import net from 'node:net';

export interface RawAnswer {
  status: number;
  /** Header names lower-cased. */
  headers: Record<string, string>;
  body: string;
}

export interface PartialBody {
  /** The server's answer, or how the connection ended without one ("closed", or the socket error's code). */
  answer: Promise<RawAnswer | string>;
  /** Ends the client's side (a request the server still holds). */
  destroy(): void;
}

/** The answer once its head and Content-Length bytes of body are in `raw`, else undefined. */
function parseAnswer(raw: Buffer): RawAnswer | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length']);
  if (!Number.isInteger(length) || raw.length < end + 4 + length) return undefined;
  return { status: Number(statusLine.split(' ')[1]), headers, body: raw.subarray(end + 4, end + 4 + length).toString('utf8') };
}

/**
 * Sends `head` (the request line and headers, without the blank line), then `prefix` and `send`
 * bytes of filler as fast as the socket takes them, then nothing more.
 */
export function partialBody(url: string, head: string, prefix: Buffer, send: number): PartialBody {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  let raw = Buffer.alloc(0);
  const answer = new Promise<RawAnswer | string>((resolve) => {
    socket.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      const parsed = parseAnswer(raw);
      if (parsed) resolve(parsed);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    socket.on('close', () => resolve('closed'));
  });
  socket.write(`${head}\r\n\r\n`);
  socket.write(prefix);
  let left = send;
  const block = Buffer.alloc(256 * 1024, 7);
  const pump = () => {
    while (left > 0 && !socket.destroyed) {
      const n = Math.min(left, block.length);
      left -= n;
      if (!socket.write(block.subarray(0, n))) return void socket.once('drain', pump);
    }
  };
  pump();
  return { answer, destroy: () => socket.destroy() };
}
