// This coordinator's instance id: minted once, kept in <data-dir>/coordinator-id, so that after a
// restart it recognises the write intents and the heartbeat row of its previous run (several
// coordinators on one PostgreSQL database each need a data dir of their own).
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const INSTANCE_ID_FILE = 'coordinator-id';
const PATTERN = /^[A-Za-z0-9-]{8,64}$/;

export function loadOrMintInstanceId(dataDir: string): string {
  const file = path.join(dataDir, INSTANCE_ID_FILE);
  try {
    const id = fs.readFileSync(file, 'utf8').trim();
    if (PATTERN.test(id)) return id;
    throw new Error(`${file} holds no coordinator id: remove it to mint a new one`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomUUID();
  fs.mkdirSync(dataDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, id + '\n', { flush: true, mode: 0o600 });
  fs.renameSync(tmp, file);
  return id;
}
