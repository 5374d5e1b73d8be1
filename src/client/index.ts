// The client library's public surface: import from here, not from the files behind it.
export { createTesseraClient, DEFAULT_URL, type ClientOptions, type ListOptions, type TesseraClient } from './client.ts';
export { TesseraClientError, isTransient, type ClientErrorCode } from './errors.ts';
export type { UploadOptions, UploadProgress, UploadResult, UploadSource } from './upload.ts';
export type { DownloadOptions, DownloadResult, FileDownloadResult } from './download.ts';
export type { EventSubscription, SubscribeOptions } from './subscriptions.ts';
export { Sha256Verifier } from './sha256-verifier.ts';
export { contentTypeOf } from './content-types.ts';
export { defaultStateDir } from './upload-state.ts';
export type * from './types.ts';
