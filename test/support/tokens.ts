// Tests authenticate as the admin by default: each helper that starts a coordinator reads the
// admin token it wrote (<data-dir>/admin.token) and remembers it for that coordinator's URL.
// The GraphQL, subscription and client helpers send it, and fetch() to a known coordinator
// carries it too (auth-fetch.ts), so a test that only wants to talk to the cluster needs no
// change. Tests about authentication itself use rawFetch, or pass their own Authorization.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const tokens = new Map<string, string>();

const originOf = (url: string) => {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
};

/** The admin token a coordinator wrote on start into `file` (or `<dir>/admin.token`). */
export function readAdminToken(dirOrFile: string): string {
  const file = dirOrFile.endsWith('.token') ? dirOrFile : join(dirOrFile, 'admin.token');
  return readFileSync(file, 'utf8').trim();
}

/** From now on requests to `url` (its origin) carry `token`; TESSERA_TOKEN too, for the client library. */
export function rememberToken(url: string, token: string): void {
  tokens.set(originOf(url), token);
  process.env.TESSERA_TOKEN = token;
}

export const tokenFor = (url: string): string | undefined => tokens.get(originOf(url));

/** `{ authorization: 'Bearer …' }` for the coordinator at `url`, or {} when none is known. */
export function authHeaders(url: string): Record<string, string> {
  const token = tokenFor(url);
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** fetch as the platform has it: no token added. */
export const rawFetch: typeof fetch = (input, init) =>
  ((globalThis as { __tesseraRawFetch?: typeof fetch }).__tesseraRawFetch ?? globalThis.fetch)(input, init);
