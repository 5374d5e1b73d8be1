import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // graphql 16 ships both index.mjs and index.js; loading both makes yoga mask our errors
    // as "Unexpected error.", so every import resolves to the CommonJS build.
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // fetch() to a coordinator started by a test helper carries its admin token (support/tokens.ts).
    setupFiles: ['test/support/auth-fetch.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
