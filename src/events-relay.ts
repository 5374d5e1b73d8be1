// The event bus between coordinators: an EventTarget for Yoga's pub/sub whose dispatch is a
// PostgreSQL NOTIFY and whose listeners are fed by LISTEN, so a subscriber on any coordinator gets
// every event exactly once, its own coordinator's too, in the database's commit order. The
// transport (which client library, which connection) is given: events-postgres.ts.

/** The one channel every coordinator of a cluster listens on (one database per cluster). */
export const EVENT_CHANNEL = 'tessera_events';

/**
 * PostgreSQL refuses a NOTIFY payload of 8000 bytes or more (and the transaction it is in with
 * it): every payload is kept below this.
 */
export const MAX_PAYLOAD_BYTES = 7900;

/** What a relay needs of the database: a NOTIFY, and a LISTEN that survives lost connections. */
export interface NotifyTransport {
  /** One NOTIFY on `channel`; resolves once the server took it. */
  notify(channel: string, payload: string): Promise<void>;
  /**
   * LISTENs on `channel` until closed; resolves once listening. After a lost connection it
   * reconnects by itself, calling `lost` then `restored` (what was notified in between is missed).
   */
  listen(
    channel: string,
    handlers: { message(payload: string): void; lost(err: Error): void; restored(): void },
  ): Promise<{ close(): Promise<void> }>;
  /** Ends its connections (after the relay closed). */
  close?(): Promise<void>;
}

/** One relayed message: the topic, the coordinator that sent it, and its data. */
export interface Envelope {
  /** The pub/sub topic (clusterEvent, datanodeHealth, or an internal one). */
  t: string;
  /** The sending coordinator's instance id. */
  o: string;
  d: unknown;
}

/**
 * The JSON payload of one message. Dates travel as ISO strings (revived by `decode`); a message
 * that would be too long loses the tail of its `message` text first (a name is at most 255
 * characters, so that always suffices for the events there are).
 */
export function encode(envelope: Envelope): string {
  let payload = JSON.stringify(envelope);
  const d = envelope.d as { message?: unknown };
  let message = typeof d === 'object' && d !== null && typeof d.message === 'string' ? [...d.message] : [];
  while (Buffer.byteLength(payload) >= MAX_PAYLOAD_BYTES && message.length > 0) {
    message = message.slice(0, Math.floor(message.length / 2));
    payload = JSON.stringify({ ...envelope, d: { ...d, message: `${message.join('')}…` } });
  }
  if (Buffer.byteLength(payload) >= MAX_PAYLOAD_BYTES) {
    throw new Error(`event ${envelope.t} is ${Buffer.byteLength(payload)} bytes as JSON; a NOTIFY takes less than 8000`);
  }
  return payload;
}

/** The envelope of a payload, its `at` a Date again; undefined for anything else on the channel. */
export function decode(payload: string): Envelope | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { t, o, d } = parsed as Partial<Envelope>;
  if (typeof t !== 'string' || typeof o !== 'string' || typeof d !== 'object' || d === null) return undefined;
  const data = d as { at?: unknown };
  if (typeof data.at === 'string') data.at = new Date(data.at);
  return { t, o, d: data };
}

/** Messages notified while the database cannot be reached wait here, the oldest dropped past this. */
const MAX_PENDING_NOTIFIES = 1000;

export interface RelayHooks {
  /** Every message from another coordinator (after its local listeners had it). */
  fromOthers?(envelope: Envelope): void;
  /** The LISTEN connection came back: what was notified meanwhile was missed. */
  restored?(): void;
  /** Something went wrong that only a log line can tell. */
  warn?(message: string, details: Record<string, unknown>): void;
}

/**
 * An EventTarget for createPubSub: `dispatchEvent` NOTIFYs (one at a time, in order) and delivers
 * nothing itself; every message LISTEN brings, this coordinator's own included, is dispatched to
 * the local listeners. `origin` tags what this coordinator sends.
 */
export function createRelayTarget(transport: NotifyTransport, origin: string, hooks: RelayHooks = {}) {
  const local = new EventTarget();
  let tail: Promise<void> = Promise.resolve();
  let pending = 0;
  let dropped = 0;
  let listening: { close(): Promise<void> } | undefined;
  let closed = false;

  const deliver = (payload: string) => {
    const envelope = decode(payload);
    if (!envelope) return hooks.warn?.('an unreadable message on the event channel was ignored', { bytes: payload.length });
    local.dispatchEvent(new CustomEvent(envelope.t, { detail: envelope.d }));
    if (envelope.o !== origin) hooks.fromOthers?.(envelope);
  };

  /** Sends one payload after those before it (a status change must not overtake the one it follows). */
  const send = (payload: string): Promise<void> => {
    if (closed) return Promise.resolve();
    if (pending >= MAX_PENDING_NOTIFIES) {
      dropped += 1;
      if (dropped === 1 || dropped % 100 === 0) hooks.warn?.('events dropped: the database takes no notifications', { dropped });
      return Promise.resolve();
    }
    pending += 1;
    const sent = tail.then(() =>
      transport.notify(EVENT_CHANNEL, payload).then(
        () => void (dropped = 0),
        (err: Error) => hooks.warn?.('an event could not be sent', { err: err.message }),
      ),
    );
    tail = sent.finally(() => void (pending -= 1));
    return tail;
  };

  const target = {
    addEventListener: local.addEventListener.bind(local),
    removeEventListener: local.removeEventListener.bind(local),
    /** Yoga's publish: sent to every coordinator (this one included, through LISTEN). */
    dispatchEvent(event: Event): boolean {
      const detail = (event as CustomEvent).detail;
      void send(encode({ t: event.type, o: origin, d: detail }));
      return true;
    },
  } as EventTarget;

  return {
    target,
    origin,
    /** The payload a transaction NOTIFYs itself (the outbox): delivered like any other. */
    payloadOf: (topic: string, detail: unknown) => encode({ t: topic, o: origin, d: detail }),
    send: (topic: string, detail: unknown) => send(encode({ t: topic, o: origin, d: detail })),
    /** Starts listening; resolves once LISTEN is in place (before any event may be missed). */
    async start(): Promise<void> {
      listening = await transport.listen(EVENT_CHANNEL, {
        message: deliver,
        lost: (err) => hooks.warn?.('event channel connection lost; reconnecting (events meanwhile are missed)', { err: err.message }),
        restored: () => hooks.restored?.(),
      });
    },
    /** Waits for the notifications sent so far, then stops listening. */
    async close(): Promise<void> {
      await tail;
      closed = true;
      await listening?.close();
    },
    /** Resolves once every notification sent so far has gone out (tests, shutdown). */
    flushed: () => tail,
  };
}

export type RelayTarget = ReturnType<typeof createRelayTarget>;
