// What detectImage and detectImageIn tell from an upload's bytes, compared with image-size itself:
// the signature check that turns non-images away before image-size must never turn away bytes
// image-size would read as an image of a sniffed format, whole or in chunks.
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { randomBytes } from 'node:crypto';
import { imageSize } from 'image-size';
import { detectImage, detectImageIn } from '../src/renditions/media.ts';

const FORMATS = ['jpeg', 'png', 'webp', 'gif', 'avif', 'tiff'] as const;
const made = (format: (typeof FORMATS)[number]) =>
  sharp({ create: { width: 40, height: 30, channels: 3, background: 'green' } })
    .toFormat(format)
    .toBuffer();

/** `bytes` as chunks of `size` bytes, as a body arrives from a socket. */
const chunked = (bytes: Buffer, size: number) =>
  Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size));

describe('image detection', () => {
  it('detects each sniffed format, whole and in chunks however small the first', async () => {
    for (const format of FORMATS) {
      const bytes = await made(format);
      const expected = { format: format === 'jpeg' ? 'JPEG' : format.toUpperCase(), width: 40, height: 30, orientation: null };
      expect(detectImage(bytes), format).toEqual(expected);
      for (const size of [1, 7, 999, 1000, 4096])
        expect(detectImageIn(chunked(bytes, size)), `${format} in ${size}-byte chunks`).toEqual(expected);
    }
  });

  it('detects an SVG whose root element opens after a prolog, and not one that opens past the first 1000 bytes', () => {
    const svg = (before: string) =>
      Buffer.from(`${before}<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect width="64" height="48"/></svg>`);
    const prolog = `<?xml version="1.0" encoding="UTF-8"?>\n<!-- a drawing -->\n  `;
    expect(detectImage(svg(prolog))).toEqual({ format: 'SVG', width: 64, height: 48, orientation: null });
    expect(detectImageIn(chunked(svg(prolog), 3))).toEqual({ format: 'SVG', width: 64, height: 48, orientation: null });
    const late = svg(`<!--${' '.repeat(1000)}-->`);
    expect(() => imageSize(late)).toThrow(); // image-size looks for the root in the first 1000 bytes only
    expect(detectImage(late)).toBeUndefined();
    expect(detectImageIn(chunked(late, 1500))).toBeUndefined();
  });

  it('finds nothing in bytes that are no image, as image-size finds no sniffed format there', () => {
    for (let i = 0; i < 200; i++) {
      const bytes = randomBytes(2000);
      let type: string | undefined;
      try {
        type = imageSize(bytes).type;
      } catch {
        type = undefined;
      }
      expect(['png', 'jpg', 'webp', 'gif', 'heif', 'avif', 'tiff', 'svg']).not.toContain(type);
      expect(detectImage(bytes)).toBeUndefined();
      expect(detectImageIn(chunked(bytes, 1200))).toBeUndefined();
    }
  });
});
