-- Several coordinators on one database (src/cluster/leader-lease.ts, src/cluster/membership.ts).
--
-- leader_lease: which coordinator runs the background work. One row per lease; holder and
-- expiry change in one conditional UPDATE, and token grows at every change of holder: it is the
-- fencing token that background writes carry (checked FOR SHARE in their transaction) and that
-- datanodes remember. Expiry is in the database's clock only.
CREATE TABLE IF NOT EXISTS leader_lease (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  token BIGINT NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL
);
INSERT INTO leader_lease (name, holder, token, expires_at)
  VALUES ('background', '', 0, '-infinity')
  ON CONFLICT (name) DO NOTHING;

-- coordinators: the members, each renewing its heartbeat; the leader releases the write intents
-- of a member whose heartbeat went stale (it died with writes in flight).
CREATE TABLE IF NOT EXISTS coordinators (
  id TEXT PRIMARY KEY,
  started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
