// Gives a JSON body with a code to the HTTP errors Yoga answers with an empty one (404 off the
// GraphQL path, 405, 406, 415), so no client has to guess from a bare status what went wrong.
import type { Plugin } from 'graphql-yoga';
import { ERROR_CODES, type ErrorCode } from '../errors.ts';

const CODE_OF_STATUS: Record<number, ErrorCode> = {
  400: 'BAD_REQUEST',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

const MESSAGE_ON_GRAPHQL_PATH: Partial<Record<ErrorCode, string>> = {
  NOT_ACCEPTABLE: 'Accept must allow application/graphql-response+json, application/json, multipart/mixed or text/event-stream.',
  UNSUPPORTED_MEDIA_TYPE: 'A GraphQL POST body must be application/json, application/graphql+json or multipart/form-data.',
};

/**
 * The body for an empty error answer: on the GraphQL path a GraphQL response (`errors` with
 * `extensions.code`, as GraphQL-over-HTTP clients read it), elsewhere `{code, message}` like
 * GET /images/{name}.
 */
export function errorBodyFor(status: number, onGraphQLPath: boolean): string {
  const code = CODE_OF_STATUS[status] ?? (status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'BAD_REQUEST');
  const message = (onGraphQLPath ? MESSAGE_ON_GRAPHQL_PATH[code] : undefined) ?? ERROR_CODES[code].message;
  return onGraphQLPath ? JSON.stringify({ errors: [{ message, extensions: { code } }] }) : JSON.stringify({ code, message });
}

export function jsonErrorBodies(graphqlPath: string): Plugin {
  return {
    onResponse({ request, response, setResponse, fetchAPI }) {
      if (response.status < 400 || response.body !== null) return;
      const onGraphQLPath = new URL(request.url).pathname === graphqlPath;
      const headers = new fetchAPI.Headers(response.headers);
      headers.set('content-type', 'application/json; charset=utf-8');
      setResponse(
        new fetchAPI.Response(errorBodyFor(response.status, onGraphQLPath), {
          status: response.status,
          statusText: response.statusText,
          headers,
        }),
      );
    },
  };
}
