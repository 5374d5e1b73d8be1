// Parameterised SQL against PostgreSQL, whichever client library runs it ($1, $2, ... placeholders):
// what the coordination tables (the background lease, the coordinators' heartbeats) need from the
// PostgreSQL metadata store, without cluster code importing the engine.
export type SqlQuery = (text: string, params: unknown[]) => Promise<Array<Record<string, unknown>>>;
