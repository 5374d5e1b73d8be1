-- The cluster this coordinator leads: minted when the cluster is new, or regained from the
-- datanodes (each proves it with the cluster secret) when the index was lost. Datanodes obey
-- only requests naming it, so a coordinator without it can neither write nor delete.
CREATE TABLE cluster_identity (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  cluster_id TEXT NOT NULL,
  established_at INTEGER NOT NULL,
  -- 'minted' (a new cluster) or 'datanodes' (regained from their proofs)
  source TEXT NOT NULL
);
