// The SQLite engine answers synchronously (better-sqlite3); the metadata interfaces are
// asynchronous so another engine (PostgreSQL) can implement them. `asyncOf` turns a synchronous
// implementation into the asynchronous interface with one settled promise per call: no extra
// work per row, and a thrown error becomes a rejection (as a network engine's would).

/** The synchronous shape of an asynchronous interface: what the SQLite engine implements. */
export type Sync<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => R : T[K];
};

/** The interface `T` answered by a synchronous implementation of it. */
export function asyncOf<T extends object>(sync: Sync<T>): T {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(sync)) {
    out[key] =
      typeof value === 'function'
        ? (...args: unknown[]) => {
            try {
              return Promise.resolve((value as (...a: unknown[]) => unknown)(...args));
            } catch (err) {
              return Promise.reject(err as Error);
            }
          }
        : value;
  }
  return out as T;
}

/** The asynchronous interface of a synchronous one: each method keeps its name and arguments and answers a promise of its result. */
export type Async<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : T[K];
};
