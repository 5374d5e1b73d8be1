// Who may ask what: signed requests (request-signing.ts) or the Bearer secret, the cluster id this
// datanode has joined (the first authenticated caller that names one), and the node id the caller
// expects to reach. Answers to authenticated callers carry a proof bound to their nonce.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { CONTENT_SHA256_HEADER, type DatanodeErrorCode } from '../src/shared/datanode-api.ts';
import { isAuthorized } from '../src/shared/cluster-secret.ts';
import {
  CLUSTER_HEADER,
  NODE_HEADER,
  NONCE_HEADER,
  PROOF_HEADER,
  SIGNED_SCHEME,
  TIME_HEADER,
  answerProof,
  verifyRequestSignature,
} from '../src/shared/request-signing.ts';
import { FENCE_HEADER, FENCE_PATTERN } from '../src/shared/fence.ts';
import { CLUSTER_ID_PATTERN, persistClusterId } from './cluster-id.ts';
import type { FenceKeeper } from './fence.ts';
import { headerValue } from './replies.ts';

/** How the caller authenticated: a signed request, the Bearer secret, or nothing needed (--insecure). */
export type CallerAuth = 'signed' | 'bearer' | 'open';

export class CallerGate {
  private joining: Promise<void> | undefined;

  constructor(
    private readonly dataDir: string,
    /** undefined only with --insecure: then no request is checked. */
    readonly secret: string | undefined,
    readonly nodeId: string,
    /** The cluster this datanode has joined, if any. */
    public clusterId: string | undefined,
    private readonly logger: Logger,
    /** The highest fencing token seen from a coordinator's background work (fence.ts). */
    readonly fence: FenceKeeper,
  ) {}

  /** How the caller authenticated; undefined when it did not. */
  authenticate(req: IncomingMessage): CallerAuth | undefined {
    const { secret } = this;
    if (secret === undefined) return 'open';
    const header = req.headers.authorization ?? '';
    if (header.startsWith(`${SIGNED_SCHEME} `)) {
      const ok = verifyRequestSignature(secret, header.slice(SIGNED_SCHEME.length + 1), {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        time: headerValue(req.headers[TIME_HEADER]) ?? '',
        nonce: headerValue(req.headers[NONCE_HEADER]) ?? '',
        clusterId: headerValue(req.headers[CLUSTER_HEADER]) ?? '',
        nodeId: headerValue(req.headers[NODE_HEADER]) ?? '',
        contentSha256: headerValue(req.headers[CONTENT_SHA256_HEADER]) ?? '',
        fence: headerValue(req.headers[FENCE_HEADER]) ?? '',
      });
      return ok ? 'signed' : undefined;
    }
    return isAuthorized(header, secret) ? 'bearer' : undefined;
  }

  /**
   * Every answer to an authenticated request proves it comes from a holder of the secret, bound
   * to the request's nonce: a server without the secret cannot acknowledge a write it never made.
   */
  proveAnswers(res: ServerResponse, nonce: string): void {
    const { secret, nodeId } = this;
    if (secret === undefined) return;
    const writeHead = res.writeHead;
    res.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
      this.setHeader(PROOF_HEADER, answerProof(secret, nonce, status, nodeId));
      this.setHeader(NODE_HEADER, nodeId);
      return (writeHead as (...args: unknown[]) => ServerResponse).call(this, status, ...rest);
    } as ServerResponse['writeHead'];
  }

  /** Joins the cluster an authenticated caller names, if this datanode has none yet. */
  async joinIfUnset(claimed: string | undefined): Promise<void> {
    if (claimed !== undefined && this.clusterId === undefined && CLUSTER_ID_PATTERN.test(claimed)) await this.join(claimed);
  }

  /**
   * The cluster and node a request names must be this datanode's: a coordinator of another
   * cluster, one without a cluster id (it lost its index and has not regained it) or one that
   * takes this URL for another datanode's is refused, so it cannot write or delete here.
   */
  async check(req: IncomingMessage, method: string, auth: CallerAuth): Promise<{ code: DatanodeErrorCode; message: string } | undefined> {
    const expectedNode = headerValue(req.headers[NODE_HEADER]);
    if (expectedNode !== undefined && expectedNode !== this.nodeId) {
      return { code: 'WRONG_NODE', message: `this is not datanode ${expectedNode.slice(0, 64)}: its data dir moved or URLs were swapped` };
    }
    const claimed = headerValue(req.headers[CLUSTER_HEADER]);
    if (claimed !== undefined) {
      await this.joinIfUnset(claimed);
      if (claimed !== this.clusterId) return { code: 'WRONG_CLUSTER', message: 'this datanode belongs to another cluster' };
      return undefined;
    }
    // A coordinator always signs; one that names no cluster has not established its identity.
    if (auth === 'signed' && (method === 'PUT' || method === 'DELETE' || method === 'POST')) {
      return { code: 'CLUSTER_ID_REQUIRED', message: 'writes and deletes need the cluster id of the coordinator (x-tessera-cluster)' };
    }
    return undefined;
  }

  /**
   * A request from a coordinator's background work names the fencing token of the lease it runs
   * under: a newer one is remembered (durably) before the request is obeyed; an older one means
   * its sender lost the lease, and its writes and deletes are refused (reads and health are not:
   * they change nothing here). Checked after the signature, which covers the header.
   */
  async checkFence(req: IncomingMessage, method: string): Promise<{ code: DatanodeErrorCode; message: string } | undefined> {
    const token = headerValue(req.headers[FENCE_HEADER]);
    if (token === undefined) return undefined;
    if (!FENCE_PATTERN.test(token)) return { code: 'INVALID_FENCE', message: `${FENCE_HEADER} is not a fencing token` };
    if ((await this.fence.admit(token)) === 'ok' || (method !== 'PUT' && method !== 'DELETE')) return undefined;
    this.logger.warn({ token, highest: this.fence.current, method, url: req.url }, 'refused a request from a former leader');
    return {
      code: 'STALE_FENCE',
      message: `fencing token ${token} is older than ${this.fence.current}: the sender no longer holds the background lease`,
    };
  }

  /** Joins the caller's cluster (once, durably, before obeying it). */
  private async join(claimed: string): Promise<void> {
    this.joining ??= persistClusterId(this.dataDir, claimed).then(() => {
      this.clusterId = claimed;
      this.logger.info({ clusterId: claimed }, 'joined cluster');
    });
    try {
      await this.joining;
    } finally {
      this.joining = undefined;
    }
  }
}
