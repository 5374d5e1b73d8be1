// Secret keys the coordinator keeps in the index (auth_keys), e.g. the signed-URL HMAC key.
import type { Db } from './database.ts';
import { asyncOf } from './async.ts';

/** The auth_keys table; what every metadata engine answers the same way. */
export interface AuthKeys {
  /** The key stored under `name`; stores `fresh` first when there is none (the first one written wins). */
  ensure(name: string, fresh: Buffer): Promise<Buffer>;
}

export function authKeys(db: Db): AuthKeys {
  const insert = db.prepare('INSERT OR IGNORE INTO auth_keys (name, value) VALUES (?, ?)');
  const select = db.prepare<[string], { value: Buffer }>('SELECT value FROM auth_keys WHERE name = ?');
  return asyncOf<AuthKeys>({
    ensure: db.transaction((name: string, fresh: Buffer) => {
      insert.run(name, fresh);
      return select.get(name)!.value;
    }),
  });
}
