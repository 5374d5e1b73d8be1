// Keeps a datanode known to its coordinator: registers via the `registerDatanode` mutation,
// retries with backoff while the coordinator is unreachable, and re-registers periodically so
// a coordinator restarted with a fresh index learns about this node again. Given several
// coordinators (one cluster on a shared database), it registers with one at a time: the current
// one, moving to the next whenever an attempt fails, and backing off only once all have failed.
import got from 'got';
import type { Logger } from 'pino';
import { bearer } from '../src/shared/datanode-api.ts';
import { createScheduler } from '../src/shared/scheduler.ts';

export const REGISTER_MUTATION = 'mutation($url:String!){registerDatanode(url:$url){id}}';

export interface RegistrationOptions {
  /** One coordinator, or several interchangeable ones (tried in turn). */
  coordinatorUrls: string | readonly string[];
  /** The URL the coordinator should use to reach this datanode. */
  selfUrl: string;
  secret: string | undefined;
  logger: Logger;
  /** Between successful registrations (the coordinator treats a repeat as a no-op by URL). */
  intervalMs?: number;
  firstRetryMs?: number;
  maxRetryMs?: number;
}

/** Starts registering at once; the returned function stops it. */
export function keepRegistered({
  coordinatorUrls,
  selfUrl,
  secret,
  logger,
  intervalMs = 15_000,
  firstRetryMs = 200,
  maxRetryMs = 5_000,
}: RegistrationOptions): () => void {
  const endpoints = (typeof coordinatorUrls === 'string' ? [coordinatorUrls] : [...coordinatorUrls]).map(
    (url) => new URL('graphql', url.endsWith('/') ? url : `${url}/`).href,
  );
  let current = 0;
  // Failed attempts since the last success: the others are tried at once, a whole round of failures backs off.
  let failedInRow = 0;
  let retryMs = firstRetryMs;
  let nextMs = intervalMs;
  let registeredWith: string | undefined;

  const attempt = async (): Promise<void> => {
    const endpoint = endpoints[current];
    try {
      const id = await register(endpoint, selfUrl, secret);
      if (registeredWith !== endpoint) logger.info({ coordinator: endpoint, id, url: selfUrl }, 'registered with coordinator');
      registeredWith = endpoint;
      failedInRow = 0;
      retryMs = firstRetryMs;
      nextMs = intervalMs;
    } catch (err) {
      logger.warn({ err: (err as Error).message, coordinator: endpoint }, 'registration failed; retrying');
      current = (current + 1) % endpoints.length;
      failedInRow++;
      if (failedInRow % endpoints.length !== 0) {
        nextMs = 0; // another coordinator may answer: ask it now
        return;
      }
      nextMs = retryMs;
      retryMs = Math.min(retryMs * 2, maxRetryMs);
    }
  };
  // unref: registration alone must not keep a closing datanode alive.
  const loop = createScheduler({ log: logger }).loop('registration', attempt, { everyMs: () => nextMs, unref: true });
  loop.start();
  return () => void loop.stop();
}

async function register(endpoint: string, selfUrl: string, secret: string | undefined): Promise<string> {
  const response = await got.post(endpoint, {
    json: { query: REGISTER_MUTATION, variables: { url: selfUrl } },
    headers: secret === undefined ? {} : { authorization: bearer(secret) },
    responseType: 'json',
    throwHttpErrors: false,
    retry: { limit: 0 }, // the loop above owns retrying
    timeout: { request: 5_000 },
  });
  const body = response.body as {
    data?: { registerDatanode?: { id?: string } | null } | null;
    errors?: { message: string; extensions?: { code?: string } }[];
  };
  if (body?.errors?.length) {
    const e = body.errors[0];
    throw new Error(`${e.extensions?.code ?? 'GRAPHQL_ERROR'}: ${e.message}`);
  }
  const id = body?.data?.registerDatanode?.id;
  if (response.statusCode !== 200 || id === undefined) {
    throw new Error(`coordinator answered HTTP ${response.statusCode} without a datanode id`);
  }
  return id;
}
