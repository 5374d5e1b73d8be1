// Datanode rows of the index: who is registered, their last health sample and status.
import type { Db } from './database.ts';

export type DatanodeStatus = 'UP' | 'DEGRADED' | 'DOWN';

export interface DatanodeRow {
  id: string;
  url: string;
  /** The id of its data dir, learnt from its first answered sample. */
  nodeId: string | null;
  status: DatanodeStatus | null;
  statusSince: number;
  registeredAt: number;
  lastSeenAt: number | null;
  cpuPercent: number | null;
  memoryPercent: number | null;
  diskPercent: number | null;
  diskFreeBytes: number | null;
  fragmentCount: number;
  storedBytes: number;
  draining: boolean;
}

const COLUMNS = `id, url, node_id AS nodeId, status, status_since AS statusSince, registered_at AS registeredAt,
  last_seen_at AS lastSeenAt, cpu_percent AS cpuPercent, memory_percent AS memoryPercent,
  disk_percent AS diskPercent, disk_free_bytes AS diskFreeBytes, fragment_count AS fragmentCount,
  stored_bytes AS storedBytes, draining`;

type Raw = Omit<DatanodeRow, 'draining'> & { draining: number };
const fromRaw = (raw: Raw | undefined): DatanodeRow | undefined => raw && { ...raw, draining: raw.draining !== 0 };

export function datanodeRows(db: Db) {
  const all = db.prepare<[], Raw>(`SELECT ${COLUMNS} FROM datanodes ORDER BY registered_at, id`);
  const byUrl = db.prepare<[string], Raw>(`SELECT ${COLUMNS} FROM datanodes WHERE url = ?`);
  const insert = db.prepare(`INSERT INTO datanodes (id, url, status, status_since, registered_at) VALUES (?, ?, NULL, ?, ?)`);
  const sample = db.prepare(`UPDATE datanodes SET status = @status, status_since = @statusSince, last_seen_at = @lastSeenAt,
      cpu_percent = @cpuPercent, memory_percent = @memoryPercent, disk_percent = @diskPercent,
      disk_free_bytes = @diskFreeBytes, fragment_count = @fragmentCount, stored_bytes = @storedBytes
    WHERE id = @id`);
  const draining = db.prepare(`UPDATE datanodes SET draining = ? WHERE id = ?`);
  const remove = db.prepare(`DELETE FROM datanodes WHERE id = ?`);
  const identify = db.prepare(`UPDATE datanodes SET node_id = ? WHERE id = ?`);
  const move = db.prepare(`UPDATE datanodes SET url = ? WHERE id = ?`);

  return {
    all: (): DatanodeRow[] => all.all().map((r) => fromRaw(r)!),
    byUrl: (url: string) => fromRaw(byUrl.get(url)),
    insert(id: string, url: string, now: number) {
      insert.run(id, url, now, now);
    },
    /** Persists the in-memory view of one datanode (its status and last sample). */
    save(row: DatanodeRow) {
      const { id, status, statusSince, lastSeenAt, cpuPercent, memoryPercent, diskPercent, diskFreeBytes, fragmentCount, storedBytes } =
        row;
      sample.run({
        id,
        status,
        statusSince,
        lastSeenAt,
        cpuPercent,
        memoryPercent,
        diskPercent,
        diskFreeBytes,
        fragmentCount,
        storedBytes,
      });
    },
    setDraining: (id: string, value: boolean) => draining.run(value ? 1 : 0, id),
    remove: (id: string) => remove.run(id),
    identify: (id: string, nodeId: string) => identify.run(nodeId, id),
    move: (id: string, url: string) => move.run(url, id),
  };
}

export type DatanodeRows = ReturnType<typeof datanodeRows>;
