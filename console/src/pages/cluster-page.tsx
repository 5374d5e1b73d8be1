// The cluster, live: every datanode with CPU, memory and disk graphs from datanodeHealth, the
// clusterEvents feed, and under-replicated fragments with the repairs made since the page opened.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { ClusterStatus, Datanode as ApiDatanode, DatanodeStatus } from '../../../src/client/types.ts';
import { gql, subscribe } from '../api.ts';
import { bytes, time } from '../format.ts';
import { CLUSTER, CLUSTER_EVENTS, DATANODE_HEALTH } from '../queries.ts';
import { Sparkline } from '../parts/sparkline.tsx';
import { Status } from '../parts/status.tsx';

// The API's types, shared with the CLI's client (type-only: nothing of it is bundled).
type Datanode = ApiDatanode & { draining: boolean };
type Figures = ClusterStatus & { pendingReplicaDeletions: number };
interface Sample {
  cpu: number | null;
  memory: number | null;
  disk: number | null;
}
interface ClusterEvent {
  __typename: string;
  at: string;
  message: string;
  status?: DatanodeStatus;
  datanode?: { id: string };
}

const HISTORY = 60;
const EVENTS = 100;

function NodeCard({ node, samples }: { node: Datanode; samples: Sample[] }) {
  return (
    <li class="node" data-id={node.id} data-status={node.status} data-samples={samples.length}>
      <div class="node-head">
        <strong>{node.url.replace(/^https?:\/\//, '')}</strong>
        <Status status={node.status} />
        {node.draining && <span class="status draining">DRAINING</span>}
      </div>
      <Sparkline label="CPU" values={samples.map((s) => s.cpu)} capacity={HISTORY} />
      <Sparkline label="Memory" values={samples.map((s) => s.memory)} capacity={HISTORY} />
      <Sparkline label="Disk" values={samples.map((s) => s.disk)} capacity={HISTORY} />
      <p class="meta">
        {node.fragmentCount} fragments · {bytes(node.storedBytes)} · {bytes(node.diskFreeBytes)} free
      </p>
    </li>
  );
}

function Repair({ figures, nodes, repaired }: { figures: Figures; nodes: Datanode[]; repaired: number }) {
  const under = figures.underReplicatedFragments;
  // From the live list, not the last poll: a node that just went DOWN counts at once.
  const live = nodes.filter((n) => n.status !== 'DOWN').length;
  return (
    <section class="repair" aria-label="Replication">
      <div class={under > 0 ? 'figure warn' : 'figure'}>
        <strong data-testid="under-replicated">{under}</strong> under-replicated fragments
      </div>
      <div class="figure">
        <strong data-testid="repaired">{repaired}</strong> replicas repaired since this page opened
      </div>
      <div class="figure">
        <strong>{figures.pendingReplicaDeletions}</strong> replica deletions pending
      </div>
      <div class="figure">
        <strong>
          {live}/{nodes.length}
        </strong>{' '}
        datanodes live · {figures.imageCount} image{figures.imageCount === 1 ? '' : 's'} · {bytes(figures.storedBytes)} · R=
        {figures.replicationFactor}
      </div>
    </section>
  );
}

/** The figures and datanodes, polled (repair progress moves without events for each fragment). */
function useFigures(intervalMs: number) {
  const [state, setState] = useState<{ cluster: Figures; datanodes: Datanode[] }>();
  const [error, setError] = useState<string>();
  const load = useRef(async () => {});
  useEffect(() => {
    const fetchFigures = () =>
      gql<{ cluster: Figures; datanodes: Datanode[] }>(CLUSTER)
        .then((d) => {
          setState(d);
          setError(undefined);
        })
        .catch((err: Error) => setError(err.message));
    load.current = fetchFigures;
    void fetchFigures();
    const timer = setInterval(fetchFigures, intervalMs);
    return () => clearInterval(timer);
  }, []);
  return { state, error, setState, reload: () => load.current() };
}

type FiguresState = { cluster: Figures; datanodes: Datanode[] };
type SetFigures = (update: (s: FiguresState | undefined) => FiguresState | undefined) => void;

/** Health samples per datanode, the events feed and repairs, live from the two subscriptions. */
function useLiveCluster(setState: SetFigures, reload: () => Promise<void>) {
  const [history, setHistory] = useState<Record<string, Sample[]>>({});
  const [events, setEvents] = useState<ClusterEvent[]>([]);
  const [repaired, setRepaired] = useState(0);
  const [liveError, setLiveError] = useState<string>();
  useEffect(() => {
    const onNode = (node: Datanode) =>
      setState(
        (s) =>
          s && {
            ...s,
            datanodes: s.datanodes.some((d) => d.id === node.id)
              ? s.datanodes.map((d) => (d.id === node.id ? node : d))
              : [...s.datanodes, node],
          },
      );
    const stopHealth = subscribe<{
      datanodeHealth: {
        cpuPercent: number | null;
        memoryPercent: number | null;
        diskPercent: number | null;
        status: DatanodeStatus;
        datanode: Datanode;
      };
    }>(
      DATANODE_HEALTH,
      ({ datanodeHealth: h }) => {
        onNode({ ...h.datanode, status: h.status });
        setHistory((all) => ({
          ...all,
          [h.datanode.id]: [...(all[h.datanode.id] ?? []), { cpu: h.cpuPercent, memory: h.memoryPercent, disk: h.diskPercent }].slice(
            -HISTORY,
          ),
        }));
      },
      (err) => setLiveError(err.message),
    );
    const stopEvents = subscribe<{ clusterEvents: ClusterEvent }>(
      CLUSTER_EVENTS,
      ({ clusterEvents: e }) => {
        setEvents((all) => [e, ...all].slice(0, EVENTS));
        if (e.__typename === 'ReplicaRepaired') setRepaired((n) => n + 1);
        // Under-replicated fragments change with these: fetch the figures now, not at the next poll.
        if (e.__typename === 'ReplicaRepaired' || e.__typename === 'DatanodeStatusChanged') void reload();
        if (e.__typename === 'DatanodeStatusChanged' && e.datanode && e.status) {
          const { id } = e.datanode;
          setState((s) => s && { ...s, datanodes: s.datanodes.map((d) => (d.id === id ? { ...d, status: e.status! } : d)) });
        }
      },
      (err) => setLiveError(err.message),
    );
    return () => {
      stopHealth();
      stopEvents();
    };
  }, []);
  return { history, events, repaired, liveError };
}

function EventsFeed({ events }: { events: ClusterEvent[] }) {
  return (
    <section class="events" aria-label="Cluster events">
      <h2>Events</h2>
      {events.length === 0 && <p class="empty">Waiting for events…</p>}
      <ol>
        {events.map((e, i) => (
          <li key={`${e.at}${i}`} class={e.__typename}>
            <time>{time(e.at)}</time> {e.message}
          </li>
        ))}
      </ol>
    </section>
  );
}

export function ClusterPage() {
  const { state, error, setState, reload } = useFigures(3000);
  const { history, events, repaired, liveError } = useLiveCluster(setState, reload);
  if (!state)
    return error ? (
      <p class="error" role="alert">
        {error}
      </p>
    ) : (
      <p class="loading">Loading…</p>
    );
  return (
    <div class="cluster">
      {(error || liveError) && (
        <p class="error" role="alert">
          {error ?? liveError}
        </p>
      )}
      <Repair figures={state.cluster} nodes={state.datanodes} repaired={repaired} />
      <ul class="nodes" aria-label="Datanodes">
        {state.datanodes.map((node) => (
          <NodeCard key={node.id} node={node} samples={history[node.id] ?? []} />
        ))}
      </ul>
      <EventsFeed events={events} />
    </div>
  );
}
