// The URL signer on its own, with a clock of our own: a signed URL lives at least the seconds
// asked for (its expiry is a whole second, rounded up), and not past its expiry.
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../src/metadata/database.ts';
import { authKeys } from '../src/metadata/auth-keys.ts';
import { createUrlSigner } from '../src/auth/signed-urls.ts';
import { TesseraError } from '../src/errors.ts';

async function signerAt(clock: { ms: number }) {
  const db = openDatabase(':memory:');
  return { signer: await createUrlSigner(authKeys(db), () => clock.ms), close: () => db.close() };
}

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return err instanceof TesseraError ? err.code : String(err);
  }
};

describe('signed URLs', () => {
  it('live at least expiresIn seconds when signed late in a second, and end at their expiry', async () => {
    const clock = { ms: 5_000_999 };
    const { signer, close } = await signerAt(clock);
    try {
      const query = new URLSearchParams(signer.sign('cat.png', 1, 'tok'));
      clock.ms += 1000;
      expect(codeOf(() => signer.verify('cat.png', query))).toBe('ok');
      clock.ms = Number(query.get('expires')) * 1000;
      expect(codeOf(() => signer.verify('cat.png', query))).toBe('SIGNED_URL_EXPIRED');
    } finally {
      close();
    }
  });
});
