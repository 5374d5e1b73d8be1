// The edge where domain errors (TesseraError: a code, a message, a status) become GraphQL errors,
// so that nothing below src/http/ and src/schema/ depends on graphql-js for its errors.
import { GraphQLError } from 'graphql';
import { handleStreamOrSingleExecutionResult, maskError, type Plugin } from 'graphql-yoga';
import { TesseraError } from '../errors.ts';

/**
 * `err` as the GraphQL error clients see: its message (as graphql-js located it, which may
 * prefix it) and `extensions` (code and extras), at `located`'s path.
 */
export function toGraphQLError(err: TesseraError, located?: GraphQLError): GraphQLError {
  return new GraphQLError(located?.message ?? err.message, {
    nodes: located?.nodes,
    source: located?.source,
    positions: located?.positions,
    path: located?.path,
    extensions: { ...err.extensions },
  });
}

/** Any error thrown below the edge: a TesseraError becomes its GraphQL error, other errors pass. */
export function asGraphQLError(err: unknown): unknown {
  if (err instanceof TesseraError) return toGraphQLError(err);
  if (err instanceof GraphQLError && err.originalError instanceof TesseraError) return toGraphQLError(err.originalError, err);
  return err;
}

const domainErrorsIn = <T extends { errors?: readonly GraphQLError[] }>(result: T): T | undefined => {
  if (!result.errors?.some((e) => e.originalError instanceof TesseraError)) return undefined;
  return { ...result, errors: result.errors.map((e) => asGraphQLError(e) as GraphQLError) };
};

/**
 * Resolvers' TesseraErrors as clients see them. Listed before Yoga's error masking (which runs
 * last), so that it only masks errors nobody raised on purpose.
 */
export const domainErrors: Plugin = {
  onExecute: () => ({
    onExecuteDone: (payload) =>
      handleStreamOrSingleExecutionResult(payload, ({ result, setResult }) => {
        const mapped = domainErrorsIn(result);
        if (mapped) setResult(mapped);
      }),
  }),
  onSubscribe: () => ({
    onSubscribeResult: (payload) =>
      handleStreamOrSingleExecutionResult(payload, ({ result, setResult }) => {
        const mapped = domainErrorsIn(result);
        if (mapped) setResult(mapped);
      }),
  }),
};

/** Yoga's masking, which would hide a TesseraError raised outside execution (e.g. in a plugin) as "Unexpected error.". */
export const maskUnexpectedErrors: typeof maskError = (error, message, isDev) => {
  const converted = asGraphQLError(error);
  return converted === error ? maskError(error, message, isDev) : (converted as GraphQLError);
};
