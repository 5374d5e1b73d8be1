-- A write intent is its coordinator's: two coordinators writing the same file (a newer leader
-- repairing the copy a stale one was writing) keep a row each, and each releases only its own,
-- so a stale leader's release no longer drops the newer leader's intent with its own. The key
-- was (fragment_id, datanode_id): the second intent was ignored and shared the first one's row.
-- Rows already there are unique on the wider key too.
ALTER TABLE write_intents DROP CONSTRAINT write_intents_pkey,
  ADD CONSTRAINT write_intents_pkey PRIMARY KEY (fragment_id, datanode_id, coordinator_id);
