-- Client tokens (issue 9): only the SHA-256 of each secret is kept; a token is revoked or
-- expires by a timestamp, never deleted, so listings show what was once valid.
CREATE TABLE tokens (
  id         TEXT PRIMARY KEY,               -- public id, shown in listings and used to revoke
  name       TEXT NOT NULL,
  role       TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
  hash       TEXT NOT NULL UNIQUE,           -- lowercase hex SHA-256 of the secret
  created_at INTEGER NOT NULL,               -- ms since the epoch
  expires_at INTEGER,                        -- NULL: never
  revoked_at INTEGER
);

-- Keys of the coordinator itself, e.g. the HMAC key of signed image URLs.
CREATE TABLE auth_keys (
  name  TEXT PRIMARY KEY,
  value BLOB NOT NULL
);

-- Which token opened an upload, for the per-token quotas on open uploads.
CREATE TABLE upload_owners (
  image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
  token_id TEXT NOT NULL
);
CREATE INDEX upload_owners_by_token ON upload_owners (token_id);
