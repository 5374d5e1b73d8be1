// Whether a datanode's health answer comes from the datanode registered at that URL: the one
// rule the registry applies on every sample, so two datanodes whose URLs were swapped, a server
// answering under another's URL, or a datanode of another cluster are never taken for each other.
import type { HealthAnswer } from './datanode-client.ts';

export interface IdentityVerdict {
  /** Why this URL is not trusted now (shown in `datanodes`); undefined when it is. */
  fault?: string;
  /** A node id to record for this entry: its first proven answer, or a blank new data dir at its URL. */
  adoptNodeId?: string;
}

export function checkIdentity({
  node,
  answer,
  clusterId,
  owner,
}: {
  node: { id: string; nodeId: string | null };
  answer: HealthAnswer;
  /** The coordinator's cluster id, if established. */
  clusterId: string | undefined;
  /** The registered datanode (other than `node`) that owns the answered node id, if any. */
  owner: { id: string; url: string } | undefined;
}): IdentityVerdict {
  if (answer.identityUnproven) return { fault: 'UNPROVEN: answered without proving it holds the cluster secret' };
  const theirs = answer.nodeId;
  if (theirs === undefined) return {}; // --insecure with a datanode that names no id: nothing to compare
  if (answer.clusterId && clusterId && answer.clusterId !== clusterId) {
    return { fault: `WRONG_CLUSTER: belongs to cluster ${answer.clusterId}, not ${clusterId}` };
  }
  if (theirs === node.nodeId) return {};
  if (owner) return { fault: `WRONG_NODE: answers with the data dir of datanode ${owner.id} (registered at ${owner.url})` };
  if (node.nodeId === null) return { adoptNodeId: theirs };
  // A blank data dir at this URL (a replaced disk) is this datanode, empty: reconciliation
  // reports its missing replicas for repair. A data dir of our cluster we do not know is not.
  if (answer.clusterId === null || answer.clusterId === undefined) return { adoptNodeId: theirs };
  return { fault: `WRONG_NODE: answers with the data dir of an unknown datanode (node id ${theirs}), not its own` };
}
