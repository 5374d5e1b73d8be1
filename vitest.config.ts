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
    // Bundles the servers the tests start as processes, once per run (src/launcher/server-bundle.ts).
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // expect.poll waits for what a test cannot be told of (a rendition cached after the answer, a
    // temp file removed after an abort): its default 1 s is short on a loaded 2-core machine.
    expect: { poll: { timeout: 10_000 } },
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
