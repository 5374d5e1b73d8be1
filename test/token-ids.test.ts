// Token ids are typed as command-line arguments (`tessera token revoke <id>`).
import { describe, expect, it } from 'vitest';
import { newTokenId } from '../src/auth/tokens.ts';

describe('token ids', () => {
  it('never start with "-", which a command line would read as an option', () => {
    // One plain base64url id in 64 starts with '-': among 2,000, all clear by chance about once in 10^14.
    const ids = Array.from({ length: 2000 }, newTokenId);
    expect(ids.filter((id) => id.startsWith('-'))).toEqual([]);
    expect(ids.every((id) => /^[A-Za-z0-9_][A-Za-z0-9_-]{11}$/.test(id))).toBe(true);
  });
});
