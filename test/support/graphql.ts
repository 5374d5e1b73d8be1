// A tiny GraphQL-over-HTTP client for tests: JSON requests and multipart (the spec's shape),
// answering the parsed body so tests can look at data and errors alike.
import { authHeaders, rawFetch } from './tokens.ts';
export interface GraphQLResponse<T = any> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: { code?: string; [k: string]: unknown } }[];
}

/**
 * `headers` may set `authorization` (the admin token of the coordinator is sent otherwise, see
 * tokens.ts); an empty `authorization` sends none.
 */
export function createGraphQLClient(baseUrl: () => string) {
  const withAuth = (headers: Record<string, string>) => {
    const all = { ...authHeaders(baseUrl()), ...headers };
    if (all.authorization === '') delete all.authorization;
    return all;
  };

  async function request<T = any>(
    query: string,
    variables: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ): Promise<GraphQLResponse<T>> {
    const res = await rawFetch(`${baseUrl()}/graphql`, {
      method: 'POST',
      headers: withAuth({ 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...headers }),
      body: JSON.stringify({ query, variables }),
    });
    return { status: res.status, ...(await res.json()) };
  }

  /** A multipart request: `files` maps a variable path (e.g. "variables.file") to its bytes. */
  async function multipart<T = any>(
    query: string,
    variables: Record<string, unknown>,
    files: Record<string, { data: Uint8Array; name?: string; type?: string }>,
    headers: Record<string, string> = {},
  ): Promise<GraphQLResponse<T>> {
    const form = new FormData();
    form.append('operations', JSON.stringify({ query, variables }));
    const map: Record<string, string[]> = {};
    Object.keys(files).forEach((path, i) => (map[String(i)] = [path]));
    form.append('map', JSON.stringify(map));
    Object.values(files).forEach((f, i) =>
      form.append(
        String(i),
        new Blob([f.data as Uint8Array<ArrayBuffer>], { type: f.type ?? 'application/octet-stream' }),
        f.name ?? `part-${i}`,
      ),
    );
    // The coordinator's CSRF prevention wants this header on multipart (src/http/cross-site.ts).
    const res = await rawFetch(`${baseUrl()}/graphql`, {
      method: 'POST',
      body: form,
      headers: withAuth({ ...headers, 'x-graphql-yoga-csrf': '1' }),
    });
    return { status: res.status, ...(await res.json()) };
  }

  /** data, or throws with the errors' codes and messages. */
  async function ok<T = any>(query: string, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<T> {
    const res = await request<T>(query, variables, headers);
    if (res.errors?.length) throw new Error(res.errors.map((e) => `${e.extensions?.code}: ${e.message}`).join('; '));
    return res.data!;
  }

  return Object.assign(ok, { request, multipart, ok });
}

/** The code of the first error of a response. */
export const codeOf = (res: GraphQLResponse) => res.errors?.[0]?.extensions?.code;
