// The coordinator's configuration: one typed object with its defaults, read from flags (and
// TESSERA_* environment variables), validated at start so a bad value names its flag.
import fs from 'node:fs';
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
  /** A request body (multipart) that sends nothing for this long is dropped. */
  bodyTimeoutSec: number;
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
  /** What callers without a token may do (src/auth): nothing by default. */
  anonymous: 'none' | 'read' | 'write';
  /** Where the admin token is written when the index holds none (default <data-dir>/admin.token). */
  adminTokenFile?: string;
  /** Per-token limits (src/auth/quotas.ts). Requests per second; 0: unlimited. */
  rateLimitPerSec: number;
  maxOpenUploadsPerToken: number;
  maxReservedBytesPerToken: number;
  maxWsConnectionsPerToken: number;
  maxSubscriptionsPerToken: number;
  /** Browser origins allowed to call the API cross-origin (CORS, graphql-ws); none by default. */
  corsOrigins: string[];
  /** PEM CA file that https:// datanode certificates are verified against. */
  datanodeCaFile?: string;
  /** Renditions (src/renditions): limits and the cache's byte budget. */
  renditions: RenditionConfig;
}

export interface RenditionConfig {
  /** Bytes the rendition cache may hold in the cluster (before replication); LRU past it. */
  cacheBytes: number;
  /** Largest width or height a rendition may ask for. */
  maxSize: number;
  /** When not empty, the only widths and heights a rendition may ask for. */
  allowedSizes: number[];
  /** Largest source, in pixels, a rendition decodes (decompression bombs are refused). */
  maxPixels: number;
  /** Renditions made at once; more wait in a bounded queue. */
  concurrency: number;
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
  anonymous: 'none',
  rateLimitPerSec: 5000,
  maxOpenUploadsPerToken: 100,
  maxReservedBytesPerToken: 64 * 1024 ** 3,
  maxWsConnectionsPerToken: 64,
  maxSubscriptionsPerToken: 256,
  bodyTimeoutSec: 30,
  reconcileMaxDeletions: 1000,
  recheckIndex: false,
  indexSynchronous: 'normal' as 'normal' | 'full',
  renditions: { cacheBytes: 256 * 1024 * 1024, maxSize: 4096, allowedSizes: [] as number[], maxPixels: 50_000_000, concurrency: 2 },
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

const anonymousAccess = (value: string) => {
  if (value !== 'none' && value !== 'read' && value !== 'write') throw new InvalidArgumentError(`--anonymous must be none, read or write (got "${value}").`);
  return value;
};

const readableFile = (flag: string) => (value: string) => {
  try {
    fs.accessSync(value, fs.constants.R_OK);
  } catch {
    throw new InvalidArgumentError(`${flag} must be a readable file (got "${value}").`);
  }
  return path.resolve(value);
};

const collectUrls = (value: string, previous: string[] = []) => [...previous, url('--datanode')(value)];

/** An origin exactly as browsers send it: scheme://host[:port], no path, no wildcard. */
const origin = (value: string) => {
  const given = value.trim().replace(/\/+$/, '');
  try {
    const parsed = new URL(given);
    if ((parsed.protocol === 'http:' || parsed.protocol === 'https:') && !given.includes('*') && parsed.origin === given.toLowerCase()) return parsed.origin;
  } catch {
    // named below
  }
  throw new InvalidArgumentError(`--cors-origin must be an origin like https://app.example.com or http://localhost:8080, without path or wildcard (got "${value}").`);
};

const sizeList = (value: string) => value.split(',').filter((v) => v.trim() !== '').map((v) => integer('--rendition-sizes', 1, 16384)(v.trim()));

// Repeatable, and the environment variable may list several separated by commas.
const collectOrigins = (value: string, previous: string[] = []) => [...previous, ...value.split(',').filter((v) => v.trim() !== '').map(origin)];

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
    .addOption(new Option('--body-timeout <seconds>', 'seconds a request body may send nothing before it is dropped').default(DEFAULTS.bodyTimeoutSec).argParser(integer('--body-timeout', 1, 3600)))
    .addOption(new Option('--public-url <url>', 'base URL used in Image.url (default: the request\'s own host)').argParser(url('--public-url')).env(env('PUBLIC_URL')))
    .addOption(new Option('--secret-file <file>', 'file holding the cluster secret (or TESSERA_CLUSTER_SECRET)'))
    .addOption(new Option('--insecure', 'run without a cluster secret (datanodes unguarded)').default(false))
    .addOption(new Option('--datanode <url>', 'a datanode to register at start (repeatable)').argParser(collectUrls).default([]))
    .addOption(new Option('--anonymous <access>', 'what callers without a token may do: none, read or write').default(DEFAULTS.anonymous).argParser(anonymousAccess).env(env('ANONYMOUS')))
    .addOption(new Option('--admin-token-file <file>', 'where the admin token is written when the index holds none (default <data-dir>/admin.token)'))
    .addOption(new Option('--rate-limit <requests/s>', 'requests per second per token (0: unlimited)').default(DEFAULTS.rateLimitPerSec).argParser(integer('--rate-limit', 0)))
    .addOption(new Option('--max-open-uploads <n>', 'open uploads per token').default(DEFAULTS.maxOpenUploadsPerToken).argParser(integer('--max-open-uploads', 1)))
    .addOption(new Option('--max-reserved-bytes <bytes>', 'bytes the open uploads of one token may reserve').default(DEFAULTS.maxReservedBytesPerToken).argParser(integer('--max-reserved-bytes', 1)))
    .addOption(new Option('--max-ws-connections <n>', 'graphql-ws connections per token').default(DEFAULTS.maxWsConnectionsPerToken).argParser(integer('--max-ws-connections', 1)))
    .addOption(new Option('--max-subscriptions <n>', 'live subscriptions (SSE and graphql-ws) per token').default(DEFAULTS.maxSubscriptionsPerToken).argParser(integer('--max-subscriptions', 1)))
    .addOption(new Option('--cors-origin <origin>', 'a browser origin allowed to call the API cross-origin (repeatable; default: none)').argParser(collectOrigins).default([]).env(env('CORS_ORIGIN')))
    .addOption(new Option('--datanode-ca-file <file>', 'PEM CA certificate(s) trusted for https:// datanode URLs (besides the system CAs)').argParser(readableFile('--datanode-ca-file')))
    .addOption(new Option('--rendition-cache-bytes <bytes>', 'bytes of renditions cached in the cluster (least-recently used evicted past it; 0: no cache)').default(DEFAULTS.renditions.cacheBytes).argParser(integer('--rendition-cache-bytes', 0)))
    .addOption(new Option('--rendition-max-size <pixels>', 'largest width or height a rendition may ask for').default(DEFAULTS.renditions.maxSize).argParser(integer('--rendition-max-size', 1, 16384)))
    .addOption(new Option('--rendition-sizes <list>', 'comma-separated widths/heights renditions may ask for (default: any up to --rendition-max-size)').argParser(sizeList))
    .addOption(new Option('--rendition-max-pixels <n>', 'largest source image (width x height) a rendition decodes').default(DEFAULTS.renditions.maxPixels).argParser(integer('--rendition-max-pixels', 1)))
    .addOption(new Option('--rendition-concurrency <n>', 'renditions made at once (others queue)').default(DEFAULTS.renditions.concurrency).argParser(integer('--rendition-concurrency', 1, 64)));
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
  bodyTimeout: number;
  reconcileMaxDeletions: number;
  recheckIndex: boolean;
  indexSynchronous: 'normal' | 'full';
  publicUrl?: string;
  secretFile?: string;
  insecure: boolean;
  datanode: string[];
  anonymous: 'none' | 'read' | 'write';
  adminTokenFile?: string;
  rateLimit: number;
  maxOpenUploads: number;
  maxReservedBytes: number;
  maxWsConnections: number;
  maxSubscriptions: number;
  corsOrigin: string[];
  datanodeCaFile?: string;
  renditionCacheBytes: number;
  renditionMaxSize: number;
  renditionSizes?: number[];
  renditionMaxPixels: number;
  renditionConcurrency: number;
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
    bodyTimeoutSec: flags.bodyTimeout,
    reconcileMaxDeletions: flags.reconcileMaxDeletions,
    recheckIndex: flags.recheckIndex,
    indexSynchronous: flags.indexSynchronous,
    publicUrl: flags.publicUrl,
    secret,
    datanodes: flags.datanode,
    anonymous: flags.anonymous,
    adminTokenFile: flags.adminTokenFile === undefined ? undefined : path.resolve(flags.adminTokenFile),
    rateLimitPerSec: flags.rateLimit,
    maxOpenUploadsPerToken: flags.maxOpenUploads,
    maxReservedBytesPerToken: flags.maxReservedBytes,
    maxWsConnectionsPerToken: flags.maxWsConnections,
    maxSubscriptionsPerToken: flags.maxSubscriptions,
    corsOrigins: flags.corsOrigin,
    datanodeCaFile: flags.datanodeCaFile,
    renditions: {
      cacheBytes: flags.renditionCacheBytes,
      maxSize: flags.renditionMaxSize,
      allowedSizes: flags.renditionSizes ?? [],
      maxPixels: flags.renditionMaxPixels,
      concurrency: flags.renditionConcurrency,
    },
  };
}

/** A full config for tests and embedders: defaults plus what is given. */
export function makeConfig(overrides: Partial<CoordinatorConfig> & Pick<CoordinatorConfig, 'dataDir'>): CoordinatorConfig {
  return { ...DEFAULTS, thresholds: { ...DEFAULTS.thresholds }, renditions: { ...DEFAULTS.renditions, allowedSizes: [] }, datanodes: [], corsOrigins: [], ...overrides };
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
