// The events' transport on PostgreSQL: NOTIFY through a one-connection pool, LISTEN on a
// connection of its own that is checked every few seconds and replaced when it is lost (a
// partition can leave a socket that errs nothing and delivers nothing).
import pg from 'pg';
import type { NotifyTransport } from './events-relay.ts';

/** How often the LISTEN connection proves it is alive, and how long it has to answer. */
const HEARTBEAT_MS = 5_000;
const HEARTBEAT_TIMEOUT_MS = 5_000;
const FIRST_RETRY_MS = 200;
const MAX_RETRY_MS = 5_000;

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

export function postgresNotifyTransport(connectionString: string): NotifyTransport & { close(): Promise<void> } {
  // Its own connection: a NOTIFY never waits behind the metadata pool's queue.
  const pool = new pg.Pool({ connectionString, max: 1, keepAlive: true, application_name: 'tessera events' });
  pool.on('error', () => {}); // an idle connection's error: the next query reconnects
  const listeners = new Set<{ close(): Promise<void> }>();

  return {
    async notify(channel, payload) {
      await pool.query('SELECT pg_notify($1, $2)', [channel, payload]);
    },

    async listen(channel, handlers) {
      const handle: { close(): Promise<void> } = await listenOn(connectionString, channel, handlers, () => listeners.delete(handle));
      listeners.add(handle);
      return handle;
    },

    async close() {
      await Promise.all([...listeners].map((l) => l.close()));
      await pool.end();
    },
  };
}

type Handlers = Parameters<NotifyTransport['listen']>[1];

/** A LISTEN on a connection of its own, replaced whenever it is lost, until closed. */
async function listenOn(
  connectionString: string,
  channel: string,
  handlers: Handlers,
  closing: () => void,
): Promise<{ close(): Promise<void> }> {
  let client: pg.Client | undefined;
  let closed = false;
  let retryMs = FIRST_RETRY_MS;
  let heartbeat: NodeJS.Timeout | undefined;
  let reconnecting: NodeJS.Timeout | undefined;

  const drop = (old: pg.Client) => {
    old.removeAllListeners('notification');
    old.on('error', () => {}); // late errors of a connection given up on
    void old.end().catch(() => {});
  };

  /** No connection (it failed, or could not be made): a new one after a pause. */
  const retry = (err: Error) => {
    if (closed) return;
    handlers.lost(err);
    const wait = retryMs;
    retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    reconnecting = setTimeout(() => void connect().then(() => handlers.restored(), retry), wait);
    reconnecting.unref();
  };
  /** The connection is gone (error, end, or no answer to the heartbeat). */
  const lost = (from: pg.Client, err: Error) => {
    if (closed || client !== from) return; // an old connection's last words
    client = undefined;
    clearInterval(heartbeat);
    drop(from);
    retry(err);
  };

  async function connect(): Promise<void> {
    const c = new pg.Client({ connectionString, keepAlive: true, application_name: 'tessera events' });
    c.on('error', (err) => lost(c, err));
    c.on('end', () => lost(c, new Error('the connection ended')));
    c.on('notification', (m) => {
      if (m.channel === channel && m.payload !== undefined) handlers.message(m.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${quoteIdent(channel)}`);
    } catch (err) {
      drop(c);
      throw err;
    }
    if (closed) return drop(c);
    client = c;
    retryMs = FIRST_RETRY_MS;
    heartbeat = setInterval(() => {
      const timer = setTimeout(() => lost(c, new Error(`no answer in ${HEARTBEAT_TIMEOUT_MS} ms`)), HEARTBEAT_TIMEOUT_MS);
      c.query('SELECT 1').then(
        () => clearTimeout(timer),
        (err: Error) => {
          clearTimeout(timer);
          lost(c, err);
        },
      );
    }, HEARTBEAT_MS);
    heartbeat.unref();
  }

  await connect();
  return {
    async close() {
      closed = true;
      closing();
      clearInterval(heartbeat);
      clearTimeout(reconnecting);
      const c = client;
      client = undefined;
      if (c) {
        c.removeAllListeners();
        c.on('error', () => {});
        await c.end().catch(() => {});
      }
    },
  };
}
