// A notification that travels with a metadata change: an engine that can (PostgreSQL) sends it
// inside the change's own transaction, so every coordinator hears of changes in commit order
// (an image's deletion never before its storing) and never of a change that did not happen.

export interface Outbox {
  /** The NOTIFY channel. */
  readonly channel: string;
  /** The NOTIFY payload (JSON, under 8000 bytes). */
  readonly payload: string;
  /**
   * Set by the engine once the notification is part of the committed change. Left unset (an
   * engine without notifications, SQLite) the caller publishes it itself after the commit.
   */
  sent?: boolean;
}
