// One header of a request, whichever API carried it: a Fetch Request (Yoga) or node:http's IncomingMessage (graphql-ws).
import type { IncomingMessage } from 'node:http';

export function headerOf(request: Request | IncomingMessage, name: string): string | undefined {
  if ('get' in request.headers && typeof request.headers.get === 'function') return request.headers.get(name) ?? undefined;
  const value = (request as IncomingMessage).headers[name];
  return Array.isArray(value) ? value[0] : value;
}
