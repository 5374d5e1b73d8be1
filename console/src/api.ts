// GraphQL over HTTP (queries, mutations, multipart fragments with upload progress) and over
// graphql-ws (subscriptions), every request with the signed-in token.
import { createClient, type Client } from 'graphql-ws';
import { savedToken } from './session.ts';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

interface GraphQLAnswer<T> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

const bearer = (token = savedToken()): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

function unwrap<T>(answer: GraphQLAnswer<T>, status: number): T {
  const error = answer.errors?.[0];
  if (error) throw new ApiError(error.message, error.extensions?.code ?? 'ERROR');
  if (!answer.data) throw new ApiError(`The coordinator answered ${status} without data.`, 'BAD_RESPONSE');
  return answer.data;
}

/** One query or mutation; `token` overrides the saved one (signing in). */
export async function gql<T>(query: string, variables: Record<string, unknown> = {}, token?: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...bearer(token) },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError('The coordinator cannot be reached.', 'NETWORK');
  }
  const answer = (await response.json().catch(() => ({}))) as GraphQLAnswer<T>;
  return unwrap(answer, response.status);
}

/**
 * A mutation with one file (graphql-multipart-request-spec) at `variables.file`, over
 * XMLHttpRequest: fetch reports no upload progress. `onSent` gets the bytes sent so far.
 */
export function gqlWithFile<T>(
  query: string,
  variables: Record<string, unknown>,
  file: Blob,
  onSent: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<T> {
  const form = new FormData();
  form.append('operations', JSON.stringify({ query, variables: { ...variables, file: null } }));
  form.append('map', JSON.stringify({ 0: ['variables.file'] }));
  form.append('0', file, 'fragment');
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/graphql');
    for (const [name, value] of Object.entries(bearer())) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader('accept', 'application/json');
    xhr.upload.onprogress = (e) => onSent(e.loaded);
    xhr.onload = () => {
      try {
        resolve(unwrap(JSON.parse(xhr.responseText) as GraphQLAnswer<T>, xhr.status));
      } catch (err) {
        reject(err instanceof ApiError ? err : new ApiError(`The coordinator answered ${xhr.status}.`, 'BAD_RESPONSE'));
      }
    };
    xhr.onerror = () => reject(new ApiError('The connection broke while sending.', 'NETWORK'));
    xhr.onabort = () => reject(new ApiError('Stopped.', 'ABORTED'));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}

let socket: Client | undefined;

/** The page's one graphql-ws connection, opened on first use with the token in connectionParams. */
function subscriptions(): Client {
  socket ??= createClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
    connectionParams: () => bearer(),
    retryAttempts: Infinity,
    shouldRetry: () => true,
  });
  return socket;
}

/** Subscribes; returns the function that ends the subscription. */
export function subscribe<T>(query: string, onData: (data: T) => void, onError: (error: ApiError) => void): () => void {
  return subscriptions().subscribe<T>(
    { query },
    {
      next: (answer) => {
        if (answer.data) onData(answer.data as T);
        const error = answer.errors?.[0];
        if (error) onError(new ApiError(error.message, String(error.extensions?.code ?? 'ERROR')));
      },
      error: (err) => onError(new ApiError(err instanceof Error ? err.message : 'The live connection closed.', 'SUBSCRIPTION')),
      complete: () => {},
    },
  );
}

/** Closes the live connection (signing out: the next one carries the next token). */
export function closeSubscriptions() {
  void socket?.dispose();
  socket = undefined;
}
