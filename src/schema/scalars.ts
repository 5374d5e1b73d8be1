// The contract's scalars: DateTime and SafeInt from graphql-scalars, a strict RFC 4648 Base64
// (decoded once, here) and the multipart File that Yoga hands to resolvers.
import { DateTimeResolver, SafeIntResolver } from 'graphql-scalars';
import { Kind } from 'graphql';
import { builder } from './builder.ts';
import { badInput } from '../errors.ts';

builder.addScalarType('DateTime', DateTimeResolver, {
  // Instants are stored as epoch milliseconds.
  serialize: (value) => DateTimeResolver.serialize(typeof value === 'number' ? new Date(value) : value),
});
builder.addScalarType('SafeInt', SafeIntResolver, {});

// Standard alphabet, padded, no whitespace: one linear pass, no copy.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeBase64(value: unknown): Buffer {
  if (typeof value !== 'string' || !BASE64.test(value)) throw badInput('Expected RFC 4648 base64 (standard alphabet, padded).');
  return Buffer.from(value, 'base64');
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
    if (typeof file?.arrayBuffer !== 'function' || typeof file.size !== 'number') throw badInput('Expected a file part of a multipart request.');
    return value as never;
  },
  parseLiteral: () => {
    throw badInput('A File is sent as a multipart part, not inline.');
  },
});
