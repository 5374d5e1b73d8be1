// The coordinator's configuration: one typed object with its defaults, read from flags (and
// TESSERA_* environment variables), validated at start so a bad value names its flag.
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';

export interface HealthThresholds {
  /** DEGRADED at or above these percentages (the seed's thresholds). */
  cpuPercent: number;
  memoryPercent: number;
  diskPercent: number;
}

export interface CoordinatorConfig {
  host: string;
  port: number;
  /** Folder of the coordinator's own files (the SQLite index). */
  dataDir: string;
  replicationFactor: number;
  fragmentSize: number;
  maxImageSize: number;
  /** Largest whole file `uploadImage` takes in one multipart request (it is buffered by Yoga). */
  maxUploadImageSize: number;
  healthIntervalMs: number;
  /** Failed samples in a row after which a datanode is DOWN. */
  downAfterFailures: number;
  thresholds: HealthThresholds;
  repairAfterSec: number;
  /** Bytes per second repair may copy (0: unthrottled). */
  repairBytesPerSec: number;
  /** Bytes per second the scrubber may read (0: no scrubbing). */
  scrubBytesPerSec: number;
  /** Pause between two scrub passes. */
  scrubPauseSec: number;
  reconcileIntervalSec: number;
  /** How long a file no row accounts for may sit on a datanode before it is deleted. */
  orphanGraceSec: number;
  uploadTtlSec: number;
  /** Orphan files one reconciliation round may queue for deletion. */
  reconcileMaxDeletions: number;
  /** Re-check the index against the datanodes' records at start (a restored, stale index). */
  recheckIndex: boolean;
  /** SQLite `synchronous` of the index (database.ts). */
  indexSynchronous: 'normal' | 'full';
  publicUrl?: string;
  /** undefined only with --insecure. */
  secret?: string;
  /** Datanodes to register at start. */
  datanodes: string[];
}

export const MAX_FRAGMENT_SIZE = 64 * 1024 * 1024;

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 4000,
  dataDir: './data',
  replicationFactor: 2,
  fragmentSize: 2 * 1024 * 1024,
  maxImageSize: 4 * 1024 ** 3,
  maxUploadImageSize: 64 * 1024 * 1024,
  healthIntervalMs: 2000,
  downAfterFailures: 3,
  thresholds: { cpuPercent: 80, memoryPercent: 90, diskPercent: 95 },
  repairAfterSec: 60,
  repairBytesPerSec: 64 * 1024 * 1024,
  scrubBytesPerSec: 8 * 1024 * 1024,
  scrubPauseSec: 3600,
  reconcileIntervalSec: 600,
  orphanGraceSec: 3600,
  uploadTtlSec: 86400,
  reconcileMaxDeletions: 1000,
  recheckIndex: false,
  indexSynchronous: 'normal' as 'normal' | 'full',
} as const;

const integer = (flag: string, min: number, max = Number.MAX_SAFE_INTEGER) => (value: string) => {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new InvalidArgumentError(`${flag} must be a whole number from ${min} to ${max} (got "${value}").`);
  }
  return n;
};

const percent = (flag: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 100) {
    throw new InvalidArgumentError(`${flag} must be a percentage above 0 and at most 100 (got "${value}").`);
  }
  return n;
};

const url = (flag: string) => (value: string) => {
  try {
    const parsed = new URL(value);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error();
    return value.replace(/\/+$/, '');
  } catch {
    throw new InvalidArgumentError(`${flag} must be an http(s) URL (got "${value}").`);
  }
};

const collectUrls = (value: string, previous: string[] = []) => [...previous, url('--datanode')(value)];

/** The flags shared by the coordinator and `npm start`. */
export function addCoordinatorOptions(command: Command): Command {
  const env = (name: string) => `TESSERA_${name}`;
  return command
    .addOption(new Option('--host <host>', 'address to listen on').default(DEFAULTS.host).env(env('HOST')))
    .addOption(new Option('--port <port>', 'coordinator port').default(DEFAULTS.port).argParser(integer('--port', 0, 65535)).env(env('PORT')))
    .addOption(new Option('--data-dir <dir>', 'where the index (and, for npm start, the datanodes) keep their files').default(DEFAULTS.dataDir).env(env('DATA_DIR')))
    .addOption(new Option('--replication-factor <n>', 'replicas of every fragment').default(DEFAULTS.replicationFactor).argParser(integer('--replication-factor', 1, 16)))
    .addOption(new Option('--fragment-size <bytes>', 'bytes per fragment for new uploads').default(DEFAULTS.fragmentSize).argParser(integer('--fragment-size', 1, MAX_FRAGMENT_SIZE)))
    .addOption(new Option('--max-image-size <bytes>', 'largest image beginUpload accepts').default(DEFAULTS.maxImageSize).argParser(integer('--max-image-size', 1)))
    .addOption(new Option('--max-upload-image-size <bytes>', 'largest file the one-shot uploadImage accepts (it is held in memory)').default(DEFAULTS.maxUploadImageSize).argParser(integer('--max-upload-image-size', 1)))
    .addOption(new Option('--health-interval-ms <ms>', 'how often every datanode is sampled').default(DEFAULTS.healthIntervalMs).argParser(integer('--health-interval-ms', 50, 3_600_000)))
    .addOption(new Option('--down-after <samples>', 'failed samples in a row before a datanode is DOWN').default(DEFAULTS.downAfterFailures).argParser(integer('--down-after', 1, 100)))
    .addOption(new Option('--degraded-cpu <percent>', 'CPU load at which a datanode is DEGRADED').default(DEFAULTS.thresholds.cpuPercent).argParser(percent('--degraded-cpu')))
    .addOption(new Option('--degraded-memory <percent>', 'memory use at which a datanode is DEGRADED').default(DEFAULTS.thresholds.memoryPercent).argParser(percent('--degraded-memory')))
    .addOption(new Option('--degraded-disk <percent>', 'disk use at which a datanode is DEGRADED').default(DEFAULTS.thresholds.diskPercent).argParser(percent('--degraded-disk')))
    .addOption(new Option('--repair-after <seconds>', 'seconds a datanode stays DOWN before its fragments are re-replicated').default(DEFAULTS.repairAfterSec).argParser(integer('--repair-after', 0)))
    .addOption(new Option('--repair-rate <bytes/s>', 'bytes per second re-replication and repair may copy (0: unthrottled)').default(DEFAULTS.repairBytesPerSec).argParser(integer('--repair-rate', 0)))
    .addOption(new Option('--scrub-rate <bytes/s>', 'bytes per second the scrubber re-reads and verifies (0: no scrubbing)').default(DEFAULTS.scrubBytesPerSec).argParser(integer('--scrub-rate', 0)))
    .addOption(new Option('--scrub-pause <seconds>', 'pause between two full scrub passes').default(DEFAULTS.scrubPauseSec).argParser(integer('--scrub-pause', 0)))
    .addOption(new Option('--reconcile-interval <seconds>', 'how often each datanode\'s inventory is compared with the index').default(DEFAULTS.reconcileIntervalSec).argParser(integer('--reconcile-interval', 1)))
    .addOption(new Option('--orphan-grace <seconds>', 'age at which a fragment file nothing references is deleted').default(DEFAULTS.orphanGraceSec).argParser(integer('--orphan-grace', 0)))
    .addOption(new Option('--reconcile-max-deletions <n>', 'orphan files one reconciliation round may delete (the rest wait for the next round)').default(DEFAULTS.reconcileMaxDeletions).argParser(integer('--reconcile-max-deletions', 0)))
    .addOption(new Option('--recheck-index', 'at start, re-check the index against the datanodes\' image records (after restoring an old copy of it)').default(false))
    .addOption(new Option('--index-synchronous <mode>', 'SQLite synchronous mode of the index: normal (crash-safe; the datanodes\' records cover a power failure) or full (every commit synced)').choices(['normal', 'full']).default(DEFAULTS.indexSynchronous))
    .addOption(new Option('--upload-ttl <seconds>', 'seconds an idle upload lives before it expires').default(DEFAULTS.uploadTtlSec).argParser(integer('--upload-ttl', 1)))
    .addOption(new Option('--public-url <url>', 'base URL used in Image.url (default: the request\'s own host)').argParser(url('--public-url')).env(env('PUBLIC_URL')))
    .addOption(new Option('--secret-file <file>', 'file holding the cluster secret (or TESSERA_CLUSTER_SECRET)'))
    .addOption(new Option('--insecure', 'run without a cluster secret (datanodes unguarded)').default(false))
    .addOption(new Option('--datanode <url>', 'a datanode to register at start (repeatable)').argParser(collectUrls).default([]));
}

export interface CoordinatorFlags {
  host: string;
  port: number;
  dataDir: string;
  replicationFactor: number;
  fragmentSize: number;
  maxImageSize: number;
  maxUploadImageSize: number;
  healthIntervalMs: number;
  downAfter: number;
  degradedCpu: number;
  degradedMemory: number;
  degradedDisk: number;
  repairAfter: number;
  repairRate: number;
  scrubRate: number;
  scrubPause: number;
  reconcileInterval: number;
  orphanGrace: number;
  uploadTtl: number;
  reconcileMaxDeletions: number;
  recheckIndex: boolean;
  indexSynchronous: 'normal' | 'full';
  publicUrl?: string;
  secretFile?: string;
  insecure: boolean;
  datanode: string[];
}

export function configFromFlags(flags: CoordinatorFlags, secret: string | undefined): CoordinatorConfig {
  return {
    host: flags.host,
    port: flags.port,
    dataDir: path.resolve(flags.dataDir),
    replicationFactor: flags.replicationFactor,
    fragmentSize: flags.fragmentSize,
    maxImageSize: flags.maxImageSize,
    maxUploadImageSize: flags.maxUploadImageSize,
    healthIntervalMs: flags.healthIntervalMs,
    downAfterFailures: flags.downAfter,
    thresholds: { cpuPercent: flags.degradedCpu, memoryPercent: flags.degradedMemory, diskPercent: flags.degradedDisk },
    repairAfterSec: flags.repairAfter,
    repairBytesPerSec: flags.repairRate,
    scrubBytesPerSec: flags.scrubRate,
    scrubPauseSec: flags.scrubPause,
    reconcileIntervalSec: flags.reconcileInterval,
    orphanGraceSec: flags.orphanGrace,
    uploadTtlSec: flags.uploadTtl,
    reconcileMaxDeletions: flags.reconcileMaxDeletions,
    recheckIndex: flags.recheckIndex,
    indexSynchronous: flags.indexSynchronous,
    publicUrl: flags.publicUrl,
    secret,
    datanodes: flags.datanode,
  };
}

/** A full config for tests and embedders: defaults plus what is given. */
export function makeConfig(overrides: Partial<CoordinatorConfig> & Pick<CoordinatorConfig, 'dataDir'>): CoordinatorConfig {
  return { ...DEFAULTS, thresholds: { ...DEFAULTS.thresholds }, datanodes: [], ...overrides };
}

/** The parsed flags back as arguments (to hand them to a child coordinator), minus `skip`. */
export function flagsToArgs(command: Command, flags: Record<string, unknown>, skip: ReadonlySet<string> = new Set()): string[] {
  const args: string[] = [];
  for (const option of command.options) {
    const key = option.attributeName();
    const value = flags[key];
    if (!option.long || skip.has(option.long) || value === undefined || value === false) continue;
    if (option.isBoolean()) args.push(option.long);
    else for (const v of Array.isArray(value) ? value : [value]) args.push(option.long, String(v));
  }
  return args;
}
