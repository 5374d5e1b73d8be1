// A new upload's row as the index tests insert it (catalog, metadata-contract): only its name,
// id, sizes and times vary.
import type { NewUpload } from '../../src/metadata/catalog/image-rows.ts';

export const uploadRow = (
  name: string,
  uploadId: string,
  createdAt: number,
  size = 10,
  fragmentSize = 4,
  expiresAt = createdAt + 1000,
): NewUpload => ({
  name,
  uploadId,
  size,
  contentType: 'image/png',
  sha256: null,
  fragmentSize,
  fragmentCount: Math.ceil(size / fragmentSize),
  createdAt,
  expiresAt,
});
