// Which datanodes this coordinator could not reach lately (src/cluster/replicas.ts marks them). The leader's health samples set a
// datanode's status for the whole cluster; a coordinator cut off from one datanode that the leader
// still reaches (so it stays UP everywhere) must not keep placing replicas there: every such write
// would wait for its answer until the request deadline. A write that got no answer in time, or
// failed without an HTTP answer, or a read with not even the head of an answer by its hedge
// (a big body may take longer from a healthy one), has this coordinator's placement avoid the datanode for a while
// (while others can take the replicas), and its reads ask it after the other replicas; any answer
// from it ends that. Local knowledge only: it changes no status (the leader's monitor decides DOWN).

/** How long a datanode that did not answer is avoided before it is tried again. */
export const AVOID_FOR_MS = 30_000;

export interface Reachability {
  /** It did not answer: avoid it for AVOID_FOR_MS. */
  unreachable(datanodeId: string): void;
  /** It answered. */
  reached(datanodeId: string): void;
  /** The datanodes avoided now. */
  avoided(): ReadonlySet<string>;
}

export function createReachability({ avoidForMs = AVOID_FOR_MS, now = () => performance.now() } = {}): Reachability {
  const until = new Map<string, number>();
  return {
    unreachable: (id) => void until.set(id, now() + avoidForMs),
    reached: (id) => void until.delete(id),
    avoided() {
      const t = now();
      for (const [id, end] of until) if (end <= t) until.delete(id);
      return new Set(until.keys());
    },
  };
}
