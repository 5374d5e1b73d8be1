// How the datanode reads request headers and writes answers: JSON bodies, and errors as
// { code, message } with the status the contract gives each code.
import type { ServerResponse } from 'node:http';
import { datanodeErrorStatus, type DatanodeErrorBody, type DatanodeErrorCode } from '../src/shared/datanode-api.ts';

/** A header's one value; a repeated header is ambiguous (a repeated checksum header above all). */
export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? undefined : value;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, code: DatanodeErrorCode, message: string): void {
  const body: DatanodeErrorBody = { code, message };
  sendJson(res, datanodeErrorStatus[code], body);
}
