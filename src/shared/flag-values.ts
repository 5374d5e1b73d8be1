// Parsers for command-line values, shared by the coordinator, `npm start`, the datanode and the
// `tessera` CLI: each takes the text given and answers the value, or throws commander's
// InvalidArgumentError with a message that names the flag, so every program refuses a bad value
// the same way.
import { InvalidArgumentError } from 'commander';

/** Whether `value` is a whole number from `min` to `max`: the range check of every count, size and duration, given as a flag or as a GraphQL argument. */
export const isWholeNumberIn = (value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max;

/** A whole number from `min` to `max` ("8080"; no sign, fraction or exponent). */
export const wholeNumber =
  (flag: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !isWholeNumberIn(n, min, max)) {
      throw new InvalidArgumentError(`${flag} must be a whole number from ${min} to ${max} (got "${value}").`);
    }
    return n;
  };

/** A percentage above 0 and at most 100 (fractions allowed). */
export const percentage =
  (flag: string) =>
  (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 100) {
      throw new InvalidArgumentError(`${flag} must be a percentage above 0 and at most 100 (got "${value}").`);
    }
    return n;
  };

const BINARY_UNITS: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

/** Bytes: a whole number, or one with a binary unit ("67108864", "64MiB", "4 GiB"), from `min` to `max`. */
export const byteSize =
  (flag: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  (value: string): number => {
    const m = /^(\d+)\s*([a-z]*)$/i.exec(value.trim());
    const unit = m ? BINARY_UNITS[m[2].toLowerCase()] : undefined;
    const n = m && unit !== undefined ? Number(m[1]) * unit : NaN;
    if (!isWholeNumberIn(n, min, max)) {
      throw new InvalidArgumentError(
        `${flag} must be a size in bytes from ${min} to ${max}, such as 1048576 or 64MiB (units B, KiB, MiB, GiB, TiB; got "${value}").`,
      );
    }
    return n;
  };

/**
 * An http(s) URL as the cluster stores and compares it: scheme, host and port as `URL` writes
 * them (lower-case host, no default port) and the path without trailing slashes; undefined for
 * anything else.
 */
export function normalizeHttpUrl(value: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
  return parsed.origin + parsed.pathname.replace(/\/+$/, '');
}

/** An http(s) URL, normalized by normalizeHttpUrl. */
export const httpUrl =
  (flag: string) =>
  (value: string): string => {
    const url = normalizeHttpUrl(value);
    if (url === undefined) throw new InvalidArgumentError(`${flag} must be an http(s) URL (got "${value}").`);
    return url;
  };

/**
 * A comma-separated list of http(s) URLs (several coordinators, for the CLI's --url and the
 * datanode's --coordinator), each normalized by normalizeHttpUrl, in the order given; throws an
 * Error naming `flag` for an empty list or entry, anything but an http(s) URL, or a repeat.
 */
export function parseHttpUrlList(value: string, flag: string): string[] {
  const entries = value.split(',').map((entry) => entry.trim());
  if (entries.every((entry) => entry === '')) throw new Error(`${flag} needs at least one http(s) URL (got "${value}").`);
  const urls: string[] = [];
  for (const entry of entries) {
    if (entry === '') throw new Error(`${flag} has an empty entry in "${value}" (URLs are separated by single commas).`);
    const url = normalizeHttpUrl(entry);
    if (url === undefined) throw new Error(`${flag} must be http(s)://… URLs, separated by commas (got "${entry}").`);
    if (urls.includes(url)) throw new Error(`${flag} lists ${url} twice.`);
    urls.push(url);
  }
  return urls;
}

/** A comma-separated list of http(s) URLs, parsed by parseHttpUrlList. */
export const httpUrlList =
  (flag: string) =>
  (value: string): string[] => {
    try {
      return parseHttpUrlList(value, flag);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };

/** One of a fixed set of words (commander's .choices() when the value needs no other parsing). */
export const oneOf =
  <const T extends string>(flag: string, words: readonly T[]) =>
  (value: string): T => {
    if (!(words as readonly string[]).includes(value))
      throw new InvalidArgumentError(`${flag} must be ${words.slice(0, -1).join(', ')} or ${words.at(-1)} (got "${value}").`);
    return value as T;
  };
