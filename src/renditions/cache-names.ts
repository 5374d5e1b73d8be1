// Names of cached renditions in the images table: they start with a control character, which no
// user-given name may hold (names.ts), so no upload can take one, no listing shows one (listings
// start at ' ') and GET /images/{name} cannot reach one.
export const RENDITION_NAME_PREFIX = '\u0001rendition/';

/** The name of the cached rendition `variant` of the image with key `imageKey` (keys are never reused). */
export const renditionName = (imageKey: string, variant: string) => `${RENDITION_NAME_PREFIX}${imageKey}?${variant}`;

export const isRenditionName = (name: string) => name.startsWith(RENDITION_NAME_PREFIX);
