// The events' transport on PostgreSQL (postgres.js): NOTIFY through a connection of its own, and
// LISTEN on another that proves it is alive every few seconds by hearing its own heartbeat. A
// connection that stopped hearing (dropped, or silently cut off by a partition: postgres.js
// re-listens once after a close and gives up if that fails) is replaced, with backoff.
import { randomBytes } from 'node:crypto';
import type postgres from 'postgres';
import type { NotifyTransport } from './events-relay.ts';

/** How often the LISTEN connection must hear its heartbeat, and how long one may take. */
const HEARTBEAT_MS = 5_000;
const HEARTBEAT_TIMEOUT_MS = 5_000;
const FIRST_RETRY_MS = 200;
const MAX_RETRY_MS = 5_000;
const APPLICATION_NAME = 'tessera events';

type Handlers = Parameters<NotifyTransport['listen']>[1];

/** One connection, no idle timeout. The driver is loaded only here: a SQLite coordinator never loads it. */
const connect = async (url: string) =>
  (await import('postgres')).default(url, {
    max: 1,
    idle_timeout: 0,
    max_lifetime: null,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { application_name: APPLICATION_NAME },
  });

export function postgresNotifyTransport(url: string): NotifyTransport & { close(): Promise<void> } {
  // Its own connection: a NOTIFY never waits behind the metadata pool's queue.
  let notifier: Promise<postgres.Sql> | undefined;
  const listeners = new Set<{ close(): Promise<void> }>();
  const notify = async (channel: string, payload: string) => {
    const sql = await (notifier ??= connect(url));
    await sql`SELECT pg_notify(${channel}, ${payload})`;
  };

  return {
    notify,
    async listen(channel, handlers) {
      const handle: { close(): Promise<void> } = await listenOn(url, channel, handlers, notify, () => listeners.delete(handle));
      listeners.add(handle);
      return handle;
    },
    async close() {
      await Promise.all([...listeners].map((l) => l.close()));
      await (await notifier)?.end({ timeout: 2 });
    },
  };
}

/** A LISTEN on a connection of its own, replaced whenever it stops hearing, until closed. */
async function listenOn(
  url: string,
  channel: string,
  handlers: Handlers,
  notify: (channel: string, payload: string) => Promise<void>,
  closing: () => void,
): Promise<{ close(): Promise<void> }> {
  // Only this listener hears its heartbeats: no coordinator pays for another's.
  const beatChannel = `${channel}_beat_${randomBytes(6).toString('hex')}`;
  let sql: postgres.Sql | undefined;
  let closed = false;
  let retryMs = FIRST_RETRY_MS;
  let heard = Date.now();
  let reconnecting: NodeJS.Timeout | undefined;

  async function open(): Promise<void> {
    const s = await connect(url);
    let listens = 0;
    try {
      await s.listen(
        channel,
        (payload) => handlers.message(payload),
        () => {
          // Called again when postgres.js re-listened after a close by itself: what came meanwhile was missed.
          listens += 1;
          if (listens > 1 && sql === s) {
            handlers.lost(new Error('the LISTEN connection closed'));
            handlers.restored();
          }
        },
      );
      await s.listen(beatChannel, () => void (heard = Date.now()));
    } catch (err) {
      void s.end({ timeout: 0 });
      throw err;
    }
    if (closed) return void s.end({ timeout: 0 });
    sql = s;
    heard = Date.now();
    retryMs = FIRST_RETRY_MS;
  }

  /** The connection stopped hearing: a new one after a pause. */
  const retry = (err: Error) => {
    if (closed) return;
    handlers.lost(err);
    const wait = retryMs;
    retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    reconnecting = setTimeout(() => void open().then(() => handlers.restored(), retry), wait);
    reconnecting.unref();
  };

  const heartbeat = setInterval(() => {
    if (!sql) return; // reconnecting
    const s = sql;
    const sentAt = Date.now();
    void notify(beatChannel, '').catch(() => {}); // a database that takes none is noticed below all the same
    setTimeout(() => {
      if (closed || sql !== s || heard >= sentAt) return;
      sql = undefined;
      void s.end({ timeout: 0 });
      retry(new Error(`the LISTEN connection heard nothing for ${HEARTBEAT_TIMEOUT_MS} ms`));
    }, HEARTBEAT_TIMEOUT_MS).unref();
  }, HEARTBEAT_MS);
  heartbeat.unref();

  await open();
  return {
    async close() {
      closed = true;
      closing();
      clearInterval(heartbeat);
      clearTimeout(reconnecting);
      const s = sql;
      sql = undefined;
      await s?.end({ timeout: 2 });
    },
  };
}
