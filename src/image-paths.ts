// Where the coordinator serves an image's bytes (GET /images/{name}): the HTTP route matches it,
// Image.url points at it.
export const IMAGE_PATH_PREFIX = '/images/';

/** The path of image `name`, percent-encoded (a / in the name is encoded too). */
export const imagePath = (name: string) => `${IMAGE_PATH_PREFIX}${encodeURIComponent(name)}`;
