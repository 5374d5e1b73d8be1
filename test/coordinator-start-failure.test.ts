// A coordinator whose start fails once its index is open (here: the admin token file cannot be
// written) closes the index again: no SQLite connection and no checkpoint thread (with its own
// connection) are left behind in the process. Linux shows a process's open files in /proc/self/fd.
import { readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { makeConfig } from '../src/config.ts';
import { createCoordinator } from '../src/coordinator.ts';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Open descriptors of this process on files under `prefix`. */
function openUnder(prefix: string): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      return target.startsWith(prefix) ? [target] : [];
    } catch {
      return []; // closed meanwhile
    }
  });
}

it.runIf(process.platform === 'linux')('closes the index and its checkpoint thread when the start fails after opening it', async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-start-failure-'));
  const dataDir = join(dir, 'coordinator');
  const notADir = join(dir, 'file');
  writeFileSync(notADir, '');
  const config = makeConfig({ dataDir, port: 0, adminTokenFile: join(notADir, 'admin-token') });
  await expect(createCoordinator(config, pino({ level: 'silent' }))).rejects.toThrow();
  expect(openUnder(dataDir)).toEqual([]);
});
