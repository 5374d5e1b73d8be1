// The GraphQL types as the client returns them: the fields its queries (queries.ts) select from
// the coordinator's schema (schema/schema.graphql), not every field the schema has.

export type DatanodeStatus = 'UP' | 'DEGRADED' | 'DOWN';

export interface DatanodeRef {
  id: string;
  url: string;
  status: DatanodeStatus;
}

export interface Datanode extends DatanodeRef {
  lastSeenAt: string | null;
  cpuPercent: number | null;
  memoryPercent: number | null;
  diskPercent: number | null;
  diskFreeBytes: number | null;
  fragmentCount: number;
  storedBytes: number;
}

export interface ImageSummary {
  name: string;
  size: number;
  contentType: string;
  sha256: string;
  fragmentSize: number;
  fragmentCount: number;
  createdAt: string;
  url: string;
}

export interface Fragment {
  index: number;
  size: number;
  sha256: string;
  replicas: DatanodeRef[];
}

export interface ImageDetail extends ImageSummary {
  fragments: Fragment[];
}

export interface PageInfo {
  hasNextPage: boolean;
  endCursor: string | null;
}

export interface ImagePage {
  images: ImageSummary[];
  pageInfo: PageInfo;
  totalCount: number;
}

export interface UploadSession {
  id: string;
  name: string;
  size: number;
  fragmentSize: number;
  fragmentCount: number;
  receivedFragments: number[];
  expiresAt: string;
}

export interface ClusterStatus {
  replicationFactor: number;
  fragmentSize: number;
  datanodeCount: number;
  liveDatanodeCount: number;
  imageCount: number;
  storedBytes: number;
  underReplicatedFragments: number;
}

interface EventBase {
  at: string;
  message: string;
}

/** The contract's three event types; others the server adds arrive with their __typename, at and message. */
export type ClusterEvent =
  | (EventBase & { __typename: 'DatanodeStatusChanged'; datanode: DatanodeRef; previous: DatanodeStatus | null; status: DatanodeStatus })
  | (EventBase & { __typename: 'ImageStored'; name: string; size: number })
  | (EventBase & { __typename: 'ImageDeleted'; name: string })
  | (EventBase & { __typename: string & {} });
