-- Images as images (issue 13): the format, the size as a viewer shows it (after EXIF
-- orientation) and the orientation, detected from the bytes at upload. media_checked is 0 for
-- images stored before detection existed: they are detected on first read (or a backfill).
ALTER TABLE images ADD COLUMN format TEXT;
ALTER TABLE images ADD COLUMN width INTEGER;
ALTER TABLE images ADD COLUMN height INTEGER;
ALTER TABLE images ADD COLUMN orientation INTEGER;
ALTER TABLE images ADD COLUMN media_checked INTEGER NOT NULL DEFAULT 0;

-- The rendition cache: each rendition is a one-fragment image of its own in the images table,
-- under a name users cannot give (it starts with a control character), so it is replicated,
-- repaired and scrubbed like any image. This table says which image and variant it renders,
-- its size for the byte budget, and when it was last served (least-recently used goes first).
CREATE TABLE renditions (
  rendition_image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
  source_image_id    INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  variant            TEXT NOT NULL,
  size               INTEGER NOT NULL,
  width              INTEGER NOT NULL,
  height             INTEGER NOT NULL,
  last_used_at       INTEGER NOT NULL,
  UNIQUE (source_image_id, variant)
);
CREATE INDEX renditions_by_use ON renditions (last_used_at);
