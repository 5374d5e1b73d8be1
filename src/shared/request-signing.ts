// How the coordinator and a datanode trust each other without the cluster secret ever crossing
// the wire: the coordinator signs each request with an HMAC of the secret, the datanode answers
// with an HMAC over the request's nonce (so a server without the secret cannot fake an answer),
// and /health carries an identity proof (HMAC over nonce, node id and cluster id). Both ends
// import this one definition.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { randomHex } from './random-ids.ts';

/** `Authorization: Tessera-HMAC-SHA256 <hex>`: a signed request (the Bearer form carries the secret itself). */
export const SIGNED_SCHEME = 'Tessera-HMAC-SHA256';
/** Milliseconds since the epoch when the request was signed. */
export const TIME_HEADER = 'x-tessera-time';
/** Random per request: binds the answer proof and the identity proof to this request. */
export const NONCE_HEADER = 'x-tessera-nonce';
/** The coordinator's cluster id; absent while it has none (then no write or delete is obeyed). */
export const CLUSTER_HEADER = 'x-tessera-cluster';
/** The node id the coordinator expects at this URL: a datanode with another id refuses (WRONG_NODE). */
export const NODE_HEADER = 'x-tessera-node';
/** On every answer to an authenticated request: proves the answer comes from a holder of the secret. */
export const PROOF_HEADER = 'x-tessera-proof';

/**
 * How far a signed request's time may be from the datanode's clock (as S3's SigV4 allows 15
 * minutes): bounds how long a captured request could be replayed (to the same node, same path,
 * same body hash). Coordinator and datanodes need roughly synchronised clocks (NTP).
 */
export const MAX_CLOCK_SKEW_MS = 15 * 60_000;

export interface SignedParts {
  method: string;
  /** The request target exactly as sent (path and query). */
  path: string;
  time: string;
  nonce: string;
  clusterId: string;
  nodeId: string;
  /** The X-Content-SHA256 of a PUT ('' otherwise): the datanode verifies the body against it. */
  contentSha256: string;
  /**
   * The x-tessera-fence of a request from a background pass ('' or absent otherwise): signed, so
   * nobody can raise or strip it, and appended only when present so unfenced requests sign as before.
   */
  fence?: string;
}

const hmac = (secret: string, text: string) => createHmac('sha256', secret).update(text).digest('hex');

function safeEqualHex(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export const newNonce = () => randomHex(16);

export function requestSignature(secret: string, p: SignedParts): string {
  const fields = ['tessera-request-v1', p.method, p.path, p.time, p.nonce, p.clusterId, p.nodeId, p.contentSha256];
  if (p.fence) fields.push(p.fence);
  return hmac(secret, fields.join('\n'));
}

/** True when `signature` signs `parts` with `secret` and the time is within the allowed skew. */
export function verifyRequestSignature(secret: string, signature: string, parts: SignedParts, now = Date.now()): boolean {
  const time = Number(parts.time);
  if (!/^\d{1,16}$/.test(parts.time) || Math.abs(now - time) > MAX_CLOCK_SKEW_MS) return false;
  if (!/^[0-9a-f]{16,64}$/.test(parts.nonce)) return false;
  return safeEqualHex(signature, requestSignature(secret, parts));
}

/** The datanode's proof on an answer: only a holder of the secret can bind it to the request's nonce. */
export function answerProof(secret: string, nonce: string, status: number, nodeId: string): string {
  return hmac(secret, ['tessera-answer-v1', nonce, String(status), nodeId].join('\n'));
}

export function verifyAnswerProof(secret: string, proof: string, nonce: string, status: number, nodeId: string): boolean {
  return safeEqualHex(proof, answerProof(secret, nonce, status, nodeId));
}

/** The identity proof in an authenticated /health answer: this node id and cluster id, now. */
export function identityProof(secret: string, nonce: string, nodeId: string, clusterId: string | null): string {
  return hmac(secret, ['tessera-identity-v1', nonce, nodeId, clusterId ?? ''].join('\n'));
}

export function verifyIdentityProof(secret: string, proof: string, nonce: string, nodeId: string, clusterId: string | null): boolean {
  return safeEqualHex(proof, identityProof(secret, nonce, nodeId, clusterId));
}
