-- Image records on the datanodes (issue 8): every image has a random key, never reused (a name
-- is, after a delete), that its manifest and tombstone on the datanodes name; and every queued
-- replica deletion says why, so each deletion is logged with its reason and a deleted image's
-- fragments carry the proof (the key) the datanodes ask for.
ALTER TABLE images ADD COLUMN image_key TEXT;
UPDATE images SET image_key = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX images_by_key ON images (image_key);
ALTER TABLE replica_deletions ADD COLUMN reason TEXT NOT NULL DEFAULT 'unrecorded-write';
ALTER TABLE replica_deletions ADD COLUMN image_key TEXT;
