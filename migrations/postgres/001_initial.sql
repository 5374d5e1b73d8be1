-- The index on PostgreSQL: the SQLite schema of migrations 001-007 as it stands after them, in
-- one file (a PostgreSQL index starts at this shape). Times are ms since the epoch (bigint), ids
-- of images are identities; names compare in byte order (COLLATE "C", which in a UTF-8 database is
-- code-point order, as SQLite's BINARY), so listings page the same on both engines.

CREATE TABLE datanodes (
  id              text PRIMARY KEY,
  url             text NOT NULL UNIQUE,
  -- NULL until the first health sample decides it.
  status          text CHECK (status IN ('UP', 'DEGRADED', 'DOWN')),
  status_since    bigint NOT NULL,
  registered_at   bigint NOT NULL,
  last_seen_at    bigint,
  cpu_percent     double precision,
  memory_percent  double precision,
  disk_percent    double precision,
  disk_free_bytes bigint,
  fragment_count  bigint NOT NULL DEFAULT 0,
  stored_bytes    bigint NOT NULL DEFAULT 0,
  -- A draining datanode takes no new replicas; its fragments move elsewhere.
  draining        boolean NOT NULL DEFAULT false,
  -- The id of its data dir (reported by /health): the same disks behind a new URL stay the same datanode.
  node_id         text
);
CREATE UNIQUE INDEX datanodes_by_node_id ON datanodes (node_id) WHERE node_id IS NOT NULL;

-- An image and the upload that makes it are one row: the UNIQUE name reserves it for both (on
-- every coordinator sharing the database), and completing an upload is a single UPDATE of state.
CREATE TABLE images (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- Random and never reused: the image's id on the datanodes (its manifest and tombstone).
  image_key      text NOT NULL UNIQUE,
  name           text COLLATE "C" NOT NULL UNIQUE,
  state          text NOT NULL CHECK (state IN ('uploading', 'stored')),
  upload_id      text UNIQUE,                -- set while uploading
  size           bigint NOT NULL CHECK (size >= 1),
  content_type   text NOT NULL,
  sha256         text,                       -- expected while uploading (optional), actual once stored
  fragment_size  bigint NOT NULL,
  fragment_count bigint NOT NULL,
  created_at     bigint NOT NULL,
  expires_at     bigint,                     -- uploads only: idle expiry
  -- Detected from the bytes; NULL for a non-image. media_checked 0: not detected yet.
  format         text,
  width          integer,
  height         integer,
  orientation    integer,
  media_checked  integer NOT NULL DEFAULT 0
);
CREATE INDEX images_stored_by_name ON images (name) WHERE state = 'stored';
CREATE INDEX images_uploads_by_expiry ON images (expires_at) WHERE state = 'uploading';

CREATE TABLE fragments (
  id       text PRIMARY KEY,                 -- the fragment's id on the datanodes
  image_id bigint NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  idx      integer NOT NULL,
  size     bigint NOT NULL,
  sha256   text NOT NULL,
  UNIQUE (image_id, idx)
);

CREATE TABLE replicas (
  fragment_id text NOT NULL REFERENCES fragments (id) ON DELETE CASCADE,
  datanode_id text NOT NULL REFERENCES datanodes (id),
  PRIMARY KEY (fragment_id, datanode_id)
);
CREATE INDEX replicas_by_datanode ON replicas (datanode_id, fragment_id);

-- Replica files to delete from datanodes, retried until the datanode acknowledges; each says why,
-- and a deleted image's files carry its key (the proof the datanodes ask for).
CREATE TABLE replica_deletions (
  fragment_id text NOT NULL,
  datanode_id text NOT NULL REFERENCES datanodes (id),
  not_before  bigint NOT NULL,
  attempts    integer NOT NULL DEFAULT 0,
  reason      text NOT NULL DEFAULT 'unrecorded-write',
  image_key   text,
  PRIMARY KEY (fragment_id, datanode_id)
);
CREATE INDEX replica_deletions_due ON replica_deletions (not_before);
CREATE INDEX replica_deletions_by_datanode ON replica_deletions (datanode_id);

-- Writes in flight: a fragment being written to a datanode, so that a write never recorded (a
-- crash) becomes a deletion rather than a file nobody knows of. coordinator_id: the coordinator
-- writing it, so the intents of one that stopped are released without touching the others'.
CREATE TABLE write_intents (
  fragment_id    text NOT NULL,
  datanode_id    text NOT NULL REFERENCES datanodes (id),
  coordinator_id text NOT NULL DEFAULT '',
  PRIMARY KEY (fragment_id, datanode_id)
);
CREATE INDEX write_intents_by_coordinator ON write_intents (coordinator_id);
CREATE INDEX write_intents_by_datanode ON write_intents (datanode_id);

-- Client tokens: only the SHA-256 of each secret is kept; a token is revoked or expires by a
-- timestamp, never deleted, so listings show what was once valid.
CREATE TABLE tokens (
  id         text PRIMARY KEY,
  name       text NOT NULL,
  role       text NOT NULL CHECK (role IN ('read', 'write', 'admin')),
  hash       text NOT NULL UNIQUE,
  created_at bigint NOT NULL,
  expires_at bigint,
  revoked_at bigint
);

-- Keys of the coordinators themselves, e.g. the HMAC key of signed image URLs (one for all).
CREATE TABLE auth_keys (
  name  text PRIMARY KEY,
  value bytea NOT NULL
);

-- Which token opened an upload, for the per-token quotas on open uploads.
CREATE TABLE upload_owners (
  image_id bigint PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
  token_id text NOT NULL
);
CREATE INDEX upload_owners_by_token ON upload_owners (token_id);

-- The cluster these coordinators lead: minted when the cluster is new, or regained from the datanodes.
CREATE TABLE cluster_identity (
  singleton      integer PRIMARY KEY CHECK (singleton = 1),
  cluster_id     text NOT NULL,
  established_at bigint NOT NULL,
  source         text NOT NULL
);

-- The rendition cache: each rendition is a one-fragment image of its own under a name users
-- cannot give; this table says which image and variant it renders, its size and last use.
CREATE TABLE renditions (
  rendition_image_id bigint PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
  source_image_id    bigint NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  variant            text NOT NULL,
  size               bigint NOT NULL,
  width              integer NOT NULL,
  height             integer NOT NULL,
  last_used_at       bigint NOT NULL,
  UNIQUE (source_image_id, variant)
);
CREATE INDEX renditions_by_use ON renditions (last_used_at);
