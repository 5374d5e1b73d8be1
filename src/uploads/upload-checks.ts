// Checks of what a client sends with an upload: hashes, media types and sizes.
import type { CoordinatorConfig } from '../config.ts';
import { badInput, TesseraError } from '../errors.ts';
import type { ImageRow } from '../metadata/catalog.ts';
import { mediaTypeProblem } from '../media-types.ts';
import { SHA256_HEX_PATTERN } from '../shared/datanode-api.ts';

/** Expected byte size of fragment `index` of an upload. */
export const fragmentSizeAt = (upload: Pick<ImageRow, 'size' | 'fragmentSize' | 'fragmentCount'>, index: number) =>
  index < upload.fragmentCount - 1 ? upload.fragmentSize : upload.size - (upload.fragmentCount - 1) * upload.fragmentSize;

export function assertSha256(value: string | null | undefined, what: string): void {
  if (value != null && !SHA256_HEX_PATTERN.test(value)) throw badInput(`${what} must be 64 lowercase hex digits.`);
}

export function assertContentType(value: string | null | undefined): void {
  if (value == null) return;
  const problem = mediaTypeProblem(value);
  // JSON.stringify: the refused value is shown escaped and cut, never echoed raw.
  if (problem)
    throw badInput(
      `contentType ${JSON.stringify(value.slice(0, 80))}${value.length > 80 ? '…' : ''} is not an acceptable media type: it ${problem}.`,
    );
}

export function assertFragmentSize(upload: ImageRow, index: number, size: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= upload.fragmentCount) {
    throw new TesseraError('INVALID_FRAGMENT', `Fragment index ${index} is outside 0..${upload.fragmentCount - 1}.`);
  }
  const expected = fragmentSizeAt(upload, index);
  if (size !== expected) throw new TesseraError('INVALID_FRAGMENT', `Fragment ${index} must be ${expected} bytes (got ${size}).`);
}

export function assertWholeSize(config: CoordinatorConfig, size: number): void {
  if (size > config.maxUploadImageSize) {
    throw new TesseraError(
      'PAYLOAD_TOO_LARGE',
      `uploadImage takes files up to ${config.maxUploadImageSize} bytes; use the chunked upload for larger ones.`,
    );
  }
}
