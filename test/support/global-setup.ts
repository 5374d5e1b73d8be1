// Vitest's global setup: builds the bundle the tests start their server processes from
// (support/server-bundle.ts) once per run, in a folder of its own (two runs at once do not share
// one), and removes it at the end. The workers find it through the environment.
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from '../../src/launcher/child-process.ts';
import { buildServerBundle, SERVER_BUNDLE_ENV } from './server-bundle.ts';

export default async function setup(): Promise<() => Promise<void>> {
  // Inside the repository: the bundle's packages are found in its node_modules.
  const cache = join(REPO_ROOT, 'node_modules', '.cache');
  await mkdir(cache, { recursive: true });
  const dir = await mkdtemp(join(cache, 'tessera-test-servers-'));
  await buildServerBundle(dir);
  process.env[SERVER_BUNDLE_ENV] = dir;
  return async () => {
    await rm(dir, { recursive: true, force: true });
  };
}
