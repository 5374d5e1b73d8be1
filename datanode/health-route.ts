// GET /health: the last system sample and the store's counts; to a caller with the secret, also
// who this datanode is, with a proof bound to its nonce.
import type { ServerResponse } from 'node:http';
import type { DatanodeHealthReport } from '../src/shared/datanode-api.ts';
import { identityProof } from '../src/shared/request-signing.ts';
import type { DatanodeContext } from './datanode-context.ts';
import type { SystemSample } from './health.ts';
import { sendError, sendJson } from './replies.ts';

/** `nonce` is given only for a caller with the secret: then the answer names and proves this node. */
export async function sendHealth(
  { health, store, gate, logger }: DatanodeContext,
  res: ServerResponse,
  nonce: string | undefined,
): Promise<void> {
  let sample: SystemSample;
  try {
    sample = await health.current();
  } catch (err) {
    logger.error({ err }, 'no health sample');
    return sendError(res, 'HEALTH_UNAVAILABLE', 'health could not be measured');
  }
  const report: DatanodeHealthReport = { ...sample, ...store.stats() };
  if (nonce !== undefined) {
    const { nodeId, clusterId, secret } = gate;
    Object.assign(report, { nodeId, clusterId: clusterId ?? null });
    if (secret !== undefined) report.proof = identityProof(secret, nonce, nodeId, clusterId ?? null);
  }
  sendJson(res, 200, report);
}
