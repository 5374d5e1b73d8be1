// Where a graphql-ws operation's token comes from when its connection_init carried none. Yoga's
// GraphiQL (like graphql-tools' url-loader) sends the Headers pane with every operation, as
// `extensions.headers` of the subscribe message, and an empty connection_init: without this,
// GraphiQL could never start a subscription on a cluster that needs tokens.

/** How long (ms) a connection without a token may wait for its first operation to bring one. */
export const UNAUTHENTICATED_SOCKET_GRACE_MS = 10_000;

/** The Authorization an operation carries in `extensions.headers` (any letter case), if any. */
export function operationAuthorization(extensions: unknown): string | undefined {
  const headers = (extensions as { headers?: unknown } | null | undefined)?.headers;
  if (typeof headers !== 'object' || headers === null) return undefined;
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === 'authorization' && typeof value === 'string') return value;
  }
  return undefined;
}
