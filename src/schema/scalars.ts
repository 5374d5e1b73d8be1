// The contract's scalars: DateTime and SafeInt from graphql-scalars, a strict RFC 4648 Base64
// (decoded once, here) and the multipart File that Yoga hands to resolvers.
import { DateTimeResolver, SafeIntResolver } from 'graphql-scalars';
import { GraphQLError, Kind } from 'graphql';
import { builder } from './builder.ts';
import type { ErrorCode } from '../errors.ts';

// graphql-js reports a scalar's refusal inside its own message ("Variable "$x" got invalid
// value …; …") only when it is a GraphQLError: a scalar is GraphQL's own edge.
const BAD_USER_INPUT: ErrorCode = 'BAD_USER_INPUT';
const badInput = (message: string) => new GraphQLError(message, { extensions: { code: BAD_USER_INPUT } });

builder.addScalarType('DateTime', DateTimeResolver, {
  // Instants are stored as epoch milliseconds.
  serialize: (value) => DateTimeResolver.serialize(typeof value === 'number' ? new Date(value) : value),
});
builder.addScalarType('SafeInt', SafeIntResolver, {});

/**
 * Strict RFC 4648 base64 (standard alphabet, padded, no whitespace), decoded once. Node's decoder
 * skips what is not base64 (and takes the URL-safe `-` and `_`), so a string is valid exactly when
 * it decodes to the length its size and padding promise and holds neither `-` nor `_`: the same
 * verdict as /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, without a regular
 * expression walking every character of a fragment, which costs many times the decode itself.
 */
export function decodeBase64(value: unknown): Buffer {
  const invalid = () => badInput('Expected RFC 4648 base64 (standard alphabet, padded).');
  if (typeof value !== 'string' || value.length % 4 !== 0) throw invalid();
  const padding = value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0;
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length !== (value.length / 4) * 3 - padding || value.includes('-') || value.includes('_')) throw invalid();
  return bytes;
}

builder.scalarType('Base64', {
  description: 'Raw bytes as RFC 4648 base64 (standard alphabet, padded)',
  serialize: (bytes) => Buffer.from(bytes as Uint8Array).toString('base64'),
  parseValue: decodeBase64,
  parseLiteral: (ast) => decodeBase64(ast.kind === Kind.STRING ? ast.value : undefined),
});

builder.scalarType('File', {
  description: 'A file part of a GraphQL multipart request (graphql-multipart-request-spec)',
  serialize: () => {
    throw new Error('File is an input-only scalar.');
  },
  parseValue: (value) => {
    const file = value as { arrayBuffer?: unknown; size?: unknown };
    if (typeof file?.arrayBuffer !== 'function' || typeof file.size !== 'number')
      throw badInput('Expected a file part of a multipart request.');
    return value as never;
  },
  parseLiteral: () => {
    throw badInput('A File is sent as a multipart part, not inline.');
  },
});
