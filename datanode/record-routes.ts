// PUT /records/{manifest|tombstone}/{image}: a record the coordinator keeps here so the index
// can be rebuilt from the datanodes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isImageKey, parseRecord, type RecordKind } from '../src/shared/datanode-api.ts';
import type { DatanodeContext } from './datanode-context.ts';
import { sendError } from './replies.ts';
import { decodeId } from './routes.ts';

/** A manifest of a 4 GiB image in 1 MiB fragments is well under this. */
const MAX_RECORD_BYTES = 32 * 1024 * 1024;

export async function putRecord(
  { records }: DatanodeContext,
  kind: RecordKind,
  rawId: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const image = decodeId(rawId);
  if (image === undefined || !isImageKey(image)) return sendError(res, 'INVALID_RECORD', 'an image id matches ^[A-Za-z0-9_-]{1,128}$');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_RECORD_BYTES) {
      res.setHeader('Connection', 'close');
      return sendError(res, 'PAYLOAD_TOO_LARGE', `a record holds at most ${MAX_RECORD_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  let record;
  try {
    record = parseRecord(JSON.parse(Buffer.concat(chunks).toString('utf8')));
  } catch {
    record = undefined;
  }
  if (!record || record.kind !== kind || record.image !== image)
    return sendError(res, 'INVALID_RECORD', `the body is not a ${kind} of image ${image}`);
  await records.add(record);
  res.writeHead(201).end();
}
