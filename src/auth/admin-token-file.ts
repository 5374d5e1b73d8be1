// Where the admin token lives on the coordinator's machine: <data-dir>/admin.token, written by
// the coordinator (service.ts), read by the tessera CLI when no token is given.
import fs from 'node:fs';
import path from 'node:path';

export const ADMIN_TOKEN_FILE = 'admin.token';
/** The data dir npm start and npm run coordinator use by default (config.ts DEFAULTS.dataDir). */
const DEFAULT_DATA_DIR = './data';

/** The admin token of the local cluster, if this user can read one: TESSERA_DATA_DIR's, else ./data's. */
export function findLocalAdminToken(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string | undefined {
  const file = path.resolve(cwd, env.TESSERA_DATA_DIR || DEFAULT_DATA_DIR, ADMIN_TOKEN_FILE);
  try {
    const token = fs.readFileSync(file, 'utf8').trim();
    return token === '' ? undefined : token;
  } catch {
    return undefined;
  }
}
