// Yoga plugins that give the contract's codes to errors raised before our resolvers run:
// a multipart part over the size limit, and arguments the GraphQL type system itself rejects.
import type { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/**
 * Errors of the request parsers (JSON body, multipart) as the conventions want them: an
 * oversized part gets the contract's PAYLOAD_TOO_LARGE (Yoga has its own code), an error with no
 * code is a 400 BAD_REQUEST (GraphQL-over-HTTP: a request that cannot be parsed is not a 200),
 * and none carries `originalError` (the parser's internals, e.g. a JSON.parse message quoting
 * the body).
 */
export const payloadTooLargeCode: Plugin = {
  onRequestParse({ requestParser, setRequestParser }) {
    if (!requestParser) return;
    setRequestParser(async (request) => {
      try {
        return await requestParser(request);
      } catch (err) {
        const e = err as { extensions?: Record<string, unknown> };
        if (e.extensions) {
          if (e.extensions.code === 'REQUEST_ENTITY_TOO_LARGE') e.extensions.code = 'PAYLOAD_TOO_LARGE';
          if (e.extensions.code === undefined) {
            e.extensions.code = 'BAD_REQUEST';
            e.extensions.http = { ...(e.extensions.http as object | undefined), status: 400 };
          }
          // Without originalError Yoga would take a `spec` error for a GraphQL error and answer
          // 200 under application/json; a body that cannot be parsed is a 400 in both media types.
          delete e.extensions.originalError;
          if (e.extensions.http) e.extensions.http = { ...(e.extensions.http as object), spec: false };
        }
        throw err;
      }
    });
  },
};

// graphql-js's messages for a value of the wrong type: a variable (`Variable "$x" got invalid
// value …`) or a literal (`Int cannot represent …`, `Expected value of type …`).
const MALFORMED_ARGUMENT =
  /got invalid value|cannot represent|^Expected value of type|^Expected type|was not provided|is not defined by type|must not be null/;

function markMalformed(errors: readonly (Error | GraphQLError)[] | undefined) {
  for (const error of errors ?? []) {
    if (!('extensions' in error) || !error.extensions) continue;
    const code = error.extensions.code;
    if ((code === undefined || code === 'GRAPHQL_VALIDATION_FAILED') && MALFORMED_ARGUMENT.test(error.message)) {
      (error.extensions as Record<string, unknown>).code = 'BAD_USER_INPUT';
    }
  }
}

/** A malformed argument is BAD_USER_INPUT whichever layer noticed it (contract, "Errors"). */
export const badUserInputCode: Plugin = {
  onValidate:
    () =>
    ({ result }) =>
      markMalformed(result),
  onExecute: () => ({
    onExecuteDone: ({ result }) => {
      if ('errors' in result) markMalformed(result.errors);
    },
  }),
};
