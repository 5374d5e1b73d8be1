// The resume ledger: which open upload id belongs to which local file (absolute path, size, mtime)
// under which image name on which coordinator, kept in a small JSON file so that a second run
// of an interrupted upload continues it instead of starting over.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface UploadFileKey {
  /** The coordinator's origin: the same file may be uploaded to two clusters. */
  url: string;
  path: string;
  size: number;
  mtimeMs: number;
  name: string;
}

export interface UploadStateEntry extends UploadFileKey {
  uploadId: string;
  /** The whole-file hash given to beginUpload (the coordinator verifies it), or null. */
  sha256: string | null;
  startedAt: string;
}

interface StateFile {
  version: 1;
  uploads: UploadStateEntry[];
}

// Entries outlive the coordinator's upload TTL (24 h by default) only by accident: drop them later.
const MAX_AGE_MS = 30 * 24 * 3600 * 1000;

/** TESSERA_STATE_DIR, else $XDG_CACHE_HOME/tessera, else ~/.cache/tessera. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TESSERA_STATE_DIR) return env.TESSERA_STATE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'tessera');
}

const sameFile = (a: UploadFileKey, b: UploadFileKey) =>
  a.url === b.url && a.path === b.path && a.size === b.size && a.mtimeMs === b.mtimeMs && a.name === b.name;

export function createUploadState(dir: string = defaultStateDir()) {
  const file = join(dir, 'uploads.json');
  // Writers in this process queue up; another process may still interleave, and the worst it
  // can do is lose a resume entry (the next run then starts over under a new name or aborts).
  let queue: Promise<unknown> = Promise.resolve();

  async function load(): Promise<UploadStateEntry[]> {
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as StateFile;
      return Array.isArray(parsed.uploads) ? parsed.uploads : [];
    } catch {
      return []; // missing or unreadable: nothing to resume
    }
  }

  async function store(uploads: UploadStateEntry[]): Promise<void> {
    const now = Date.now();
    const kept = uploads.filter((u) => now - Date.parse(u.startedAt) < MAX_AGE_MS);
    await mkdir(dir, { recursive: true });
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify({ version: 1, uploads: kept } satisfies StateFile, null, 1), { mode: 0o600 });
    await rename(tmp, file); // readers never see half a file
  }

  function update<T>(change: (uploads: UploadStateEntry[]) => { uploads?: UploadStateEntry[]; result: T }): Promise<T> {
    const next = queue.then(async () => {
      const { uploads, result } = change(await load());
      if (uploads) await store(uploads);
      return result;
    });
    queue = next.catch(() => {});
    return next;
  }

  return {
    file,
    /** The entry for exactly this file, and the entries that hold the same name on the same coordinator for another version of a file. */
    async lookup(key: UploadFileKey): Promise<{ entry?: UploadStateEntry; stale: UploadStateEntry[] }> {
      await queue;
      const uploads = await load();
      return {
        entry: uploads.find((u) => sameFile(u, key)),
        stale: uploads.filter((u) => u.url === key.url && u.name === key.name && !sameFile(u, key)),
      };
    },
    save: (entry: UploadStateEntry) =>
      update((uploads) => ({
        uploads: [...uploads.filter((u) => u.uploadId !== entry.uploadId && !sameFile(u, entry)), entry],
        result: undefined,
      })),
    remove: (uploadId: string) =>
      update((uploads) => {
        const rest = uploads.filter((u) => u.uploadId !== uploadId);
        return { uploads: rest.length === uploads.length ? undefined : rest, result: undefined };
      }),
    list: () => load(),
  };
}

export type UploadState = ReturnType<typeof createUploadState>;
