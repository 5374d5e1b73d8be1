// Vitest setup file: fetch() to a coordinator a helper started (see tokens.ts) carries its admin
// token unless the request sets its own Authorization header. rawFetch skips this.
import { tokenFor } from './tokens.ts';

const g = globalThis as { __tesseraRawFetch?: typeof fetch };
const platformFetch = (g.__tesseraRawFetch ??= globalThis.fetch);

globalThis.fetch = (input: string | URL | Request, init?: RequestInit) => {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const token = tokenFor(url);
  if (!token) return platformFetch(input, init);
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
  return platformFetch(input, { ...init, headers });
};
