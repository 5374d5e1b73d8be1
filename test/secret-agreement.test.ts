// Coordinators on one database agree on the cluster secret: the first one's fingerprint stands,
// a coordinator with another secret (or --insecure beside secured ones) refuses to start.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreeOnClusterSecret, secretFingerprint } from '../src/cluster/secret-agreement.ts';
import { metadataEngines } from './support/metadata-engines.ts';

for (const engine of await metadataEngines()) {
  describe.skipIf(engine.skip)(`cluster secret agreement on ${engine.name}${engine.skip ? ` (skipped: ${engine.skip})` : ''}`, () => {
    beforeAll(() => engine.setUp());
    afterAll(() => engine.tearDown());

    it("accepts the first coordinator's secret and the same secret again, from another coordinator too", async () => {
      const first = await engine.open();
      await agreeOnClusterSecret(first.authKeys, 's3cret');
      await agreeOnClusterSecret((await engine.openAnother()).authKeys, 's3cret');
    });

    it('refuses another secret, and --insecure beside a secret, naming the flag', async () => {
      const first = await engine.open();
      await agreeOnClusterSecret(first.authKeys, 's3cret');
      const other = await engine.openAnother();
      await expect(agreeOnClusterSecret(other.authKeys, 'other')).rejects.toThrow(/another cluster secret.*--secret-file/);
      await expect(agreeOnClusterSecret(other.authKeys, undefined)).rejects.toThrow(/runs with --insecure/);
    });

    it('keeps the secret out of the database (only an HMAC under it)', () => {
      expect(secretFingerprint('s3cret').toString('latin1')).not.toContain('s3cret');
      expect(secretFingerprint('a').equals(secretFingerprint('b'))).toBe(false);
    });
  });
}
