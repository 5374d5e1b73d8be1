// The coordinator's HTTP client to datanodes (got, keep-alive): the datanode protocol seen
// from the calling side. Retries are the caller's business (it picks another replica).
import http from 'node:http';
import got, { HTTPError, type Got } from 'got';
import { CONTENT_SHA256_HEADER, bearer, paths, type DatanodeHealthReport, type FragmentListing } from '../../datanode/protocol.ts';

export interface DatanodeClient {
  putFragment(baseUrl: string, id: string, data: Buffer, sha256: string): Promise<void>;
  /** The bytes and the hash the datanode announced; undefined on 404. */
  getFragment(baseUrl: string, id: string): Promise<Buffer | undefined>;
  deleteFragment(baseUrl: string, id: string): Promise<void>;
  listFragments(baseUrl: string): Promise<FragmentListing[]>;
  health(baseUrl: string, timeoutMs: number): Promise<DatanodeHealthReport>;
  close(): void;
}

export function createDatanodeClient({ secret, timeoutMs = 30_000 }: { secret?: string; timeoutMs?: number }): DatanodeClient {
  // Many 2 MiB fragments go to the same few datanodes: reuse connections.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16 });
  const client: Got = got.extend({
    agent: { http: agent },
    retry: { limit: 0 },
    timeout: { request: timeoutMs },
    headers: secret ? { authorization: bearer(secret) } : {},
    throwHttpErrors: true,
  });
  const url = (base: string, path: string) => base + path;

  return {
    async putFragment(baseUrl, id, data, sha256) {
      await client.put(url(baseUrl, paths.fragment(id)), { body: data, headers: { [CONTENT_SHA256_HEADER]: sha256, 'content-type': 'application/octet-stream' } });
    },
    async getFragment(baseUrl, id) {
      try {
        return await client.get(url(baseUrl, paths.fragment(id)), { responseType: 'buffer', resolveBodyOnly: true });
      } catch (err) {
        if (err instanceof HTTPError && err.response.statusCode === 404) return undefined;
        throw err;
      }
    },
    async deleteFragment(baseUrl, id) {
      await client.delete(url(baseUrl, paths.fragment(id)));
    },
    async listFragments(baseUrl) {
      return client.get(url(baseUrl, paths.fragments)).json<FragmentListing[]>();
    },
    async health(baseUrl, ms) {
      return client.get(url(baseUrl, paths.health), { timeout: { request: ms } }).json<DatanodeHealthReport>();
    },
    close() {
      agent.destroy();
    },
  };
}
