// Where the coordinator serves an image's bytes (GET /images/{name}): the HTTP route matches it,
// Image.url points at it.
export const IMAGE_PATH_PREFIX = '/images/';

/** The path of image `name`, percent-encoded (a / in the name is encoded too). */
export const imagePath = (name: string) => `${IMAGE_PATH_PREFIX}${encodeURIComponent(name)}`;

/**
 * A GET /images/{name} with this header set to `sha256` says its client checks the body against
 * the ETag itself (the `tessera` client does): the coordinator then does not hash each fragment
 * again, it takes a replica whose datanode reports the indexed hash of the file it read, at the
 * right size. On a mismatch the client fetches again without the header.
 */
export const CLIENT_CHECKS_HEADER = 'x-tessera-client-checks';
