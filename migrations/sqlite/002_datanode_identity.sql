-- A datanode is recognised by the id of its data dir (reported by /health), so the same disks
-- behind a new URL stay the same datanode instead of a new, empty one.
ALTER TABLE datanodes ADD COLUMN node_id TEXT;
CREATE UNIQUE INDEX datanodes_by_node_id ON datanodes (node_id) WHERE node_id IS NOT NULL;
