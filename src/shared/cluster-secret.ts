// The cluster secret that guards every datanode request: read from a file or the environment,
// shared by the datanode and the coordinator so both ends load and compare it the same way.
import { readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';

export const SECRET_ENV = 'TESSERA_CLUSTER_SECRET';

/**
 * The secret from `secretFile` (trimmed) or TESSERA_CLUSTER_SECRET; undefined when neither is
 * given. Throws with a message naming the flag when the file is unreadable or empty.
 */
export function loadClusterSecret(secretFile: string | undefined, env = process.env): string | undefined {
  if (secretFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(secretFile, 'utf8').trim();
    } catch (err) {
      throw new Error(`--secret-file ${secretFile}: ${(err as Error).message}`);
    }
    if (text === '') throw new Error(`--secret-file ${secretFile}: the file is empty`);
    return text;
  }
  const fromEnv = env[SECRET_ENV]?.trim();
  return fromEnv ? fromEnv : undefined;
}

/** Constant-time check of an `Authorization` header against `Bearer <secret>`. */
export function isAuthorized(header: string | undefined, secret: string | undefined): boolean {
  if (secret === undefined) return true; // --insecure: nothing to check
  if (header === undefined) return false;
  const given = Buffer.from(header);
  const expected = Buffer.from(`Bearer ${secret}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
