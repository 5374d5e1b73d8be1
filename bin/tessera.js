#!/usr/bin/env node
// The `tessera` command. It runs dist/cli/cli.js, the CLI bundled by `npm run build:cli` (which
// `npm install` runs): plain JavaScript, so start-up pays no TypeScript compilation. When the
// bundle is missing or older than one of the sources it was built from (dist/cli/sources.json:
// a developer's edit), it runs the TypeScript through tsx's loader instead, so the command never
// runs stale code. Either way the CLI runs in this process: signals (Ctrl-C) and the exit status
// are its own.
import { readFileSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const bundle = new URL('dist/cli/cli.js', root);

function bundleIsFresh() {
  try {
    const built = statSync(bundle).mtimeMs;
    const sources = JSON.parse(readFileSync(new URL('dist/cli/sources.json', root), 'utf8'));
    return sources.length > 0 && sources.every((file) => statSync(new URL(file, root)).mtimeMs <= built);
  } catch {
    return false; // no bundle, no source list, or a source gone: build again or run the sources
  }
}

if (bundleIsFresh()) {
  await import(bundle.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/client/cli.ts');
}
