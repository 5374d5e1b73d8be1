// Vitest's global setup: builds the bundle the tests start their server processes from
// (src/launcher/server-bundle.ts) once per run, in a folder of its own (two runs at once do not
// share one), and removes it at the end. The workers find it through the environment.
import { prepareServerBundle } from '../../src/launcher/server-bundle.ts';

export default async function setup(): Promise<() => void> {
  const { remove } = await prepareServerBundle();
  return remove;
}
