// The Tessera client: one object over one keep-alive connection pool, wrapping every part of
// the contract a user needs (upload, download, list, stat, delete, datanodes, cluster, events).
import type { Writable } from 'node:stream';
import { download, downloadTo, type DownloadOptions, type DownloadResult, type FileDownloadResult } from './download.ts';
import { TesseraClientError } from './errors.ts';
import { createHttpTransport, type HttpTransport } from './http-transport.ts';
import * as Q from './queries.ts';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.ts';
import type { EventSubscription, SubscribeOptions, WsEndpoints } from './subscriptions.ts';
import type { ClusterEvent, ClusterStatus, Datanode, ImageDetail, ImagePage, ImageSummary } from './types.ts';
import { upload, type UploadOptions, type UploadResult, type UploadSource } from './upload.ts';
import { createUploadState, defaultStateDir } from './upload-state.ts';

export const DEFAULT_URL = 'http://127.0.0.1:4000';

/**
 * subscribeClusterEvents, with graphql-ws and ws loaded on the first subscription: they cost
 * about a tenth of a second of start-up that every other command would pay for nothing.
 */
function subscribeLazily(
  wsUrl: string | WsEndpoints,
  onEvent: (event: ClusterEvent) => void,
  options: SubscribeOptions,
): EventSubscription {
  let inner: EventSubscription | undefined;
  let closed = false;
  const loaded = import('./subscriptions.ts').then(({ subscribeClusterEvents }) => {
    inner = subscribeClusterEvents(wsUrl, onEvent, options);
    if (closed) inner.close();
    return inner;
  });
  return {
    ready: loaded.then((s) => s.ready),
    done: loaded.then((s) => s.done),
    close() {
      closed = true;
      inner?.close();
    },
  };
}

const wsOf = (http: string) => http.replace(/^http/, 'ws');

/** Where subscriptions connect: the one coordinator, or the current one of several, moving past one whose socket fails. */
const eventEndpoints = (transport: HttpTransport): string | WsEndpoints =>
  transport.coordinatorCount === 1
    ? wsOf(transport.urlOf('/graphql'))
    : {
        count: transport.coordinatorCount,
        current: () => wsOf(transport.urlOf('/graphql')),
        failed: (url) => transport.leaveUrl(url.replace(/^ws/, 'http')),
      };

export interface ClientOptions {
  /**
   * The coordinator's base URL, or several interchangeable ones (an array or a comma-separated
   * string: calls move to the next when one cannot be reached); default TESSERA_URL, else
   * http://127.0.0.1:4000.
   */
  url?: string | readonly string[];
  /** Folder of the resume ledger (default TESSERA_STATE_DIR, $XDG_CACHE_HOME/tessera or ~/.cache/tessera); false: never resume. */
  stateDir?: string | false;
  retry?: Partial<RetryPolicy>;
  /** Idle time after which a request fails with NETWORK_ERROR. */
  timeoutMs?: number;
  headers?: Record<string, string>;
  /** The client token, sent as `Authorization: Bearer <token>` (default TESSERA_TOKEN). */
  token?: string;
}

export interface ListOptions {
  prefix?: string;
  /** Page size, 0..1000 (the coordinator's default is 50). */
  first?: number;
  /** The endCursor of the previous page. */
  after?: string;
  signal?: AbortSignal;
}

export function createTesseraClient({
  url = process.env.TESSERA_URL || DEFAULT_URL,
  stateDir,
  retry = {},
  timeoutMs,
  headers,
  token = process.env.TESSERA_TOKEN || undefined,
}: ClientOptions = {}) {
  const authorization = token ? `Bearer ${token}` : undefined;
  const transport = createHttpTransport({ url, timeoutMs, headers: { ...(authorization ? { authorization } : {}), ...headers } });
  const state = stateDir === false ? undefined : createUploadState(stateDir ?? defaultStateDir());
  const retryPolicy = { ...DEFAULT_RETRY, ...retry };
  let fragmentSize: Promise<number> | undefined;
  const clusterFragmentSize = () => {
    fragmentSize ??= transport
      .graphql<{ cluster: Pick<ClusterStatus, 'fragmentSize'> }>(Q.CLUSTER_FRAGMENT_SIZE)
      .then((d) => d.cluster.fragmentSize);
    fragmentSize.catch(() => (fragmentSize = undefined)); // try again next time
    return fragmentSize;
  };
  const gql = transport.graphql;

  async function page(query: string, { prefix, first, after, signal }: ListOptions) {
    const { images } = await gql<{ images: { totalCount?: number; edges: { node: ImageSummary }[]; pageInfo: ImagePage['pageInfo'] } }>(
      query,
      { prefix: prefix ?? null, first: first ?? null, after: after ?? null },
      { signal },
    );
    return { images: images.edges.map((e) => e.node), pageInfo: images.pageInfo, totalCount: images.totalCount };
  }

  return {
    /** The coordinator calls go to now (with several, the one they moved to last). */
    get url() {
      return transport.origin;
    },
    /** The upload ledger file, for tools that want to show or clear it. */
    stateFile: state?.file,

    /** Uploads a file (by path) or a stream (name and size required); see UploadOptions. */
    upload: (source: UploadSource, options: UploadOptions = {}): Promise<UploadResult> =>
      upload({ transport, state, retry: retryPolicy, clusterFragmentSize }, source, options),

    /** Downloads an image into the file `output`, verified, atomically. */
    download: (name: string, output: string, options: DownloadOptions = {}): Promise<FileDownloadResult> =>
      download(transport, name, output, options),

    /** Streams an image into `destination`; throws after the fact if the bytes do not verify. */
    downloadTo: (name: string, destination: Writable, options: DownloadOptions & { end?: boolean } = {}): Promise<DownloadResult> =>
      downloadTo(transport, name, destination, options),

    /** One page of images ordered by name, with the number matching `prefix`. */
    list: async (options: ListOptions = {}): Promise<ImagePage> => {
      const p = await page(Q.IMAGES_PAGE, options);
      return { ...p, totalCount: p.totalCount ?? p.images.length };
    },

    /** Every image (matching `prefix`), page after page. */
    async *listAll({
      prefix,
      pageSize = 1000,
      signal,
    }: { prefix?: string; pageSize?: number; signal?: AbortSignal } = {}): AsyncGenerator<ImageSummary> {
      let after: string | undefined;
      for (;;) {
        const p = await page(Q.IMAGES_PAGE_UNCOUNTED, { prefix, first: pageSize, after, signal });
        yield* p.images;
        if (!p.pageInfo.hasNextPage || !p.pageInfo.endCursor) return;
        after = p.pageInfo.endCursor;
      }
    },

    /** The image with its fragments and their replicas; IMAGE_NOT_FOUND when there is none. */
    async stat(name: string, { signal }: { signal?: AbortSignal } = {}): Promise<ImageDetail> {
      const { image } = await gql<{ image: ImageDetail | null }>(Q.IMAGE_DETAIL, { name }, { signal });
      if (!image) throw new TesseraClientError('IMAGE_NOT_FOUND', `No stored image is named "${name}".`);
      return image;
    },

    /** Deletes an image; false when there was none of that name. */
    remove: async (name: string, { signal }: { signal?: AbortSignal } = {}): Promise<boolean> =>
      (await gql<{ deleteImage: boolean }>(Q.DELETE_IMAGE, { name }, { signal })).deleteImage,

    /** Drops an open upload (e.g. one a Ctrl-C left behind) and its fragments. */
    abortUpload: async (uploadId: string): Promise<boolean> =>
      (await gql<{ abortUpload: boolean }>(Q.ABORT_UPLOAD, { uploadId })).abortUpload,

    nodes: async ({ signal }: { signal?: AbortSignal } = {}): Promise<Datanode[]> =>
      (await gql<{ datanodes: Datanode[] }>(Q.DATANODES, {}, { signal })).datanodes,

    cluster: async ({ signal }: { signal?: AbortSignal } = {}): Promise<ClusterStatus> =>
      (await gql<{ cluster: ClusterStatus }>(Q.CLUSTER, {}, { signal })).cluster,

    /** Live cluster events until close(), abort or failure (see EventSubscription). */
    subscribe: (onEvent: (event: ClusterEvent) => void, options: SubscribeOptions = {}): EventSubscription =>
      subscribeLazily(eventEndpoints(transport), onEvent, { authorization, ...options }),

    /** Any other GraphQL operation, with the same errors. */
    graphql: gql,

    /** Frees the connection pool (idle keep-alive sockets would otherwise keep a process alive). */
    close: () => transport.close(),
  };
}

export type TesseraClient = ReturnType<typeof createTesseraClient>;
