// Strict media types for stored images: what an upload may declare (RFC 6838 names, bounded,
// printable ASCII only), and what a stored one may be served as. A value that passes is always
// a valid HTTP header value. Hand-written because the grammar is a few lines and the maintained
// parsers (jshttp's content-type) are lenient by design: they never reject.

/** Longest accepted media type, parameters included. */
export const MAX_MEDIA_TYPE_LENGTH = 255;
/** Most parameters a media type may carry (`charset`, `codecs`… one or two in practice). */
export const MAX_MEDIA_TYPE_PARAMETERS = 8;

// RFC 6838 section 4.2: restricted-name = restricted-name-first *126restricted-name-chars
const RESTRICTED_NAME = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
// RFC 9110 section 5.6.6 parameter value: a token, or a quoted-string of printable ASCII.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const QUOTED_STRING = /^"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e]|\\[\t\x20-\x7e])*"$/;
// Only what a header may carry without encoding questions: printable ASCII, space and tab.
const PRINTABLE_ASCII = /^[\t\x20-\x7e]*$/;

/** Why `value` is not an acceptable media type, or undefined when it is. */
export function mediaTypeProblem(value: string): string | undefined {
  if (value.length > MAX_MEDIA_TYPE_LENGTH) return `is longer than ${MAX_MEDIA_TYPE_LENGTH} characters`;
  if (!PRINTABLE_ASCII.test(value)) return 'holds a control or non-ASCII character';
  const [essence, ...parameters] = splitParameters(value);
  const slash = essence.indexOf('/');
  if (slash < 0) return 'is not type/subtype';
  const type = essence.slice(0, slash);
  const subtype = essence.slice(slash + 1);
  if (!RESTRICTED_NAME.test(type) || !RESTRICTED_NAME.test(subtype)) return 'has a type or subtype that is not an RFC 6838 name';
  if (parameters.length > MAX_MEDIA_TYPE_PARAMETERS) return `has more than ${MAX_MEDIA_TYPE_PARAMETERS} parameters`;
  const seen = new Set<string>();
  for (const parameter of parameters) {
    const eq = parameter.indexOf('=');
    if (eq < 0) return 'has a parameter without a value';
    const name = parameter.slice(0, eq).toLowerCase();
    const paramValue = parameter.slice(eq + 1);
    if (!RESTRICTED_NAME.test(name)) return 'has a parameter name that is not an RFC 6838 name';
    if (!TOKEN.test(paramValue) && !QUOTED_STRING.test(paramValue))
      return 'has a parameter value that is neither a token nor a quoted string';
    if (seen.has(name)) return `repeats the parameter "${name}"`;
    seen.add(name);
  }
  return undefined;
}

/** `type/subtype` and each `name=value`, trimmed; a `;` inside a quoted string does not split. */
function splitParameters(value: string): string[] {
  const pieces: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted && c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (c === ';' && !quoted) {
      pieces.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  pieces.push(value.slice(start).trim());
  return pieces;
}

export const isValidMediaType = (value: string) => mediaTypeProblem(value) === undefined;

/** image/* types are shown inline; everything else is only ever downloaded. */
export const isImageMediaType = (value: string) => /^image\//i.test(value);
