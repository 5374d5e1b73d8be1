-- The fragment index: datanodes, images (open uploads included), fragments and where their
-- replicas live, and the replica files still to remove from datanodes.

CREATE TABLE datanodes (
  id              TEXT PRIMARY KEY,
  url             TEXT NOT NULL UNIQUE,
  -- NULL until the first health sample decides it.
  status          TEXT CHECK (status IN ('UP', 'DEGRADED', 'DOWN')),
  status_since    INTEGER NOT NULL,          -- ms since the epoch
  registered_at   INTEGER NOT NULL,
  last_seen_at    INTEGER,
  cpu_percent     REAL,
  memory_percent  REAL,
  disk_percent    REAL,
  disk_free_bytes INTEGER,
  fragment_count  INTEGER NOT NULL DEFAULT 0,
  stored_bytes    INTEGER NOT NULL DEFAULT 0,
  -- A draining datanode takes no new replicas; its fragments move elsewhere.
  draining        INTEGER NOT NULL DEFAULT 0
);

-- An image and the upload that makes it are one row: the UNIQUE name reserves it for both, and
-- completing an upload is a single UPDATE of state.
CREATE TABLE images (
  id             INTEGER PRIMARY KEY,
  name           TEXT NOT NULL UNIQUE,
  state          TEXT NOT NULL CHECK (state IN ('uploading', 'stored')),
  upload_id      TEXT UNIQUE,                -- set while uploading
  size           INTEGER NOT NULL CHECK (size >= 1),
  content_type   TEXT NOT NULL,
  sha256         TEXT,                       -- expected while uploading (optional), actual once stored
  fragment_size  INTEGER NOT NULL,
  fragment_count INTEGER NOT NULL,
  created_at     INTEGER NOT NULL,
  expires_at     INTEGER                     -- uploads only: idle expiry
);
CREATE INDEX images_stored_by_name ON images (name) WHERE state = 'stored';
CREATE INDEX images_uploads_by_expiry ON images (expires_at) WHERE state = 'uploading';

CREATE TABLE fragments (
  id       TEXT PRIMARY KEY,                 -- the fragment's id on the datanodes
  image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  idx      INTEGER NOT NULL,
  size     INTEGER NOT NULL,
  sha256   TEXT NOT NULL,
  UNIQUE (image_id, idx)
);

CREATE TABLE replicas (
  fragment_id TEXT NOT NULL REFERENCES fragments (id) ON DELETE CASCADE,
  datanode_id TEXT NOT NULL REFERENCES datanodes (id),
  PRIMARY KEY (fragment_id, datanode_id)
) WITHOUT ROWID;
CREATE INDEX replicas_by_datanode ON replicas (datanode_id, fragment_id);

-- Replica files to delete from datanodes, retried until the datanode acknowledges. A write in
-- flight is recorded here first with not_before in the far future (an intent): if the
-- coordinator dies before the write is recorded, the next start makes it due.
CREATE TABLE replica_deletions (
  fragment_id TEXT NOT NULL,
  datanode_id TEXT NOT NULL REFERENCES datanodes (id),
  not_before  INTEGER NOT NULL,
  attempts    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (fragment_id, datanode_id)
) WITHOUT ROWID;
CREATE INDEX replica_deletions_due ON replica_deletions (not_before);
