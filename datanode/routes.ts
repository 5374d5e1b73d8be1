// The datanode's route table: which path is which resource, and the methods each one answers.
import { paths, type RecordKind } from '../src/shared/datanode-api.ts';

export type Route =
  | { kind: 'health' }
  | { kind: 'list' }
  | { kind: 'fragment'; rawId: string }
  | { kind: 'records' }
  | { kind: 'record'; recordKind: RecordKind; rawId: string }
  | { kind: 'deletions' }
  | { kind: 'unknown' };

export const allowedMethods: Record<Exclude<Route['kind'], 'unknown'>, string[]> = {
  health: ['GET'],
  list: ['GET'],
  fragment: ['GET', 'PUT', 'DELETE'],
  records: ['GET'],
  record: ['PUT'],
  deletions: ['POST'],
};

/** Matches the raw path: URL parsing would fold `/fragments/..` into `/` instead of a 400. */
export function matchRoute(url: string): Route {
  const path = url.split('?', 1)[0];
  if (path === paths.health) return { kind: 'health' };
  if (path === paths.fragments) return { kind: 'list' };
  const prefix = `${paths.fragments}/`;
  if (path.startsWith(prefix)) return { kind: 'fragment', rawId: path.slice(prefix.length) };
  if (path === paths.records) return { kind: 'records' };
  if (path === paths.deletions) return { kind: 'deletions' };
  for (const recordKind of ['manifest', 'tombstone'] as const) {
    const recordPrefix = `${paths.records}/${recordKind}/`;
    if (path.startsWith(recordPrefix)) return { kind: 'record', recordKind, rawId: path.slice(recordPrefix.length) };
  }
  return { kind: 'unknown' };
}

/** A path segment decoded, or undefined for malformed percent-encoding. */
export function decodeId(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}
