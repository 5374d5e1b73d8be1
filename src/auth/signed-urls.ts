// Signed, expiring links to GET /images/{name} (like S3's presigned URLs): an HMAC-SHA256 over
// the name, the expiry and the id of the token that asked for it, with a key kept in the index.
// A page can embed the link without holding a token; it stops working when it expires or when
// that token is revoked.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuthKeys } from '../metadata/auth-keys.ts';
import { badInput, TesseraError } from '../errors.ts';
import { isWholeNumberIn } from '../shared/flag-values.ts';

/** The longest a signed URL may live, as S3 allows: seven days. */
export const MAX_SIGNED_URL_SEC = 7 * 86400;
const KEY_NAME = 'image-url-hmac';

export interface SignedUrlParams {
  expires: number;
  /** The id of the token that signed it ('anonymous' under --anonymous). */
  tokenId: string;
}

export async function createUrlSigner(keys: AuthKeys, now: () => number = Date.now) {
  const key = await keys.ensure(KEY_NAME, randomBytes(32));

  const mac = (name: string, expires: number, tokenId: string) =>
    createHmac('sha256', key).update(`GET\n${name}\n${expires}\n${tokenId}`).digest();

  return {
    /** The query string (without '?') that makes GET /images/{name} work until `expiresInSec` from now. */
    sign(name: string, expiresInSec: number, tokenId: string): string {
      if (!isWholeNumberIn(expiresInSec, 1, MAX_SIGNED_URL_SEC)) {
        throw badInput(`expiresIn must be from 1 to ${MAX_SIGNED_URL_SEC} seconds.`);
      }
      // Rounded up to the whole second: rounding down gave a 1 s URL as little as 1 ms of life.
      const expires = Math.ceil(now() / 1000) + expiresInSec;
      return new URLSearchParams({
        expires: String(expires),
        token: tokenId,
        signature: mac(name, expires, tokenId).toString('base64url'),
      }).toString();
    },

    /**
     * The signature's parameters when the query carries a valid, unexpired signature for `name`;
     * undefined when it carries none; SIGNED_URL_INVALID or SIGNED_URL_EXPIRED otherwise.
     */
    verify(name: string, query: URLSearchParams): SignedUrlParams | undefined {
      const signature = query.get('signature');
      if (signature === null) return undefined;
      const expiresText = query.get('expires') ?? '';
      const tokenId = query.get('token') ?? '';
      const given = Buffer.from(signature, 'base64url');
      const expires = Number(expiresText);
      if (!/^\d{1,12}$/.test(expiresText) || tokenId === '' || tokenId.length > 64) throw new TesseraError('SIGNED_URL_INVALID');
      const expected = mac(name, expires, tokenId);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new TesseraError('SIGNED_URL_INVALID');
      if (expires * 1000 <= now()) throw new TesseraError('SIGNED_URL_EXPIRED');
      return { expires, tokenId };
    },
  };
}

export type UrlSigner = Awaited<ReturnType<typeof createUrlSigner>>;
