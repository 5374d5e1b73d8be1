// Image names are metadata only (never a path); these are the contract's rules for them.
import { badInput } from './errors.ts';

const CONTROL = /\p{Cc}/u;
export const MAX_NAME_LENGTH = 255;

/** Throws BAD_USER_INPUT unless `name` is 1..255 characters of well-formed UTF-8, no control characters, not `.` or `..`. */
export function assertImageName(name: string): void {
  if (!name.isWellFormed()) throw badInput('An image name must be valid UTF-8 (it has a lone surrogate).');
  const length = [...name].length;
  if (length < 1 || length > MAX_NAME_LENGTH) {
    throw badInput(`An image name must be 1 to ${MAX_NAME_LENGTH} characters long (got ${length}).`);
  }
  if (CONTROL.test(name)) throw badInput('An image name must not contain control characters.');
  if (name === '.' || name === '..') throw badInput(`"${name}" is not a valid image name.`);
}

/**
 * The smallest string greater than every string that starts with `prefix`, in code-point
 * order (which is UTF-8 byte order), or undefined when there is none: lets a prefix filter
 * be an index range `name >= prefix AND name < upper`.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const points = [...prefix].map((c) => c.codePointAt(0)!);
  while (points.length > 0) {
    let last = points.pop()!;
    if (last === 0x10ffff) continue;
    last += 1;
    if (last === 0xd800) last = 0xe000; // skip the surrogate block: not characters
    points.push(last);
    return String.fromCodePoint(...points);
  }
  return undefined;
}
