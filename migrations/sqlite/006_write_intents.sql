-- Writes in flight get a table of their own: until now they were rows of replica_deletions
-- whose not_before was the largest safe integer (never due), which every deletion query had
-- to step around. Intents left by an older coordinator move here unchanged.
CREATE TABLE write_intents (
  fragment_id TEXT NOT NULL,
  datanode_id TEXT NOT NULL REFERENCES datanodes (id),
  PRIMARY KEY (fragment_id, datanode_id)
) WITHOUT ROWID;

INSERT INTO write_intents (fragment_id, datanode_id)
  SELECT fragment_id, datanode_id FROM replica_deletions WHERE not_before = 9007199254740991;
DELETE FROM replica_deletions WHERE not_before = 9007199254740991;
