#!/usr/bin/env node
// The `tessera` command. It runs dist/cli/cli.js, the CLI bundled by `npm run build:cli` (which
// `npm install` runs): plain JavaScript, so start-up pays no TypeScript compilation. When the
// bundle is missing or older than a source file of the client (a developer's edit), it runs the
// TypeScript through tsx's loader instead, so the command never runs stale code. Either way the
// CLI runs in this process: signals (Ctrl-C) and the exit status are its own.
import { readdirSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const bundle = new URL('dist/cli/cli.js', root);

function bundleIsFresh() {
  let built;
  try {
    built = statSync(bundle).mtimeMs;
  } catch {
    return false;
  }
  const sources = new URL('src/client/', root);
  return readdirSync(sources).every((file) => statSync(new URL(file, sources)).mtimeMs <= built);
}

if (bundleIsFresh()) {
  await import(bundle.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/client/cli.ts');
}
