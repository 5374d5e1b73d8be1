// The coordinator's configuration. Every flag is declared once, in coordinatorOptions(): its
// config key, flag, help, default, parser and environment variable; the config's type is inferred
// from those declarations by commander (extra-typings), and a bad value stops the program with a
// message that names its flag. `npm start` takes the same flags and hands them to its coordinator.
import path from 'node:path';
import fs from 'node:fs';
import { InvalidArgumentError, Option, type CommandUnknownOpts, type InferOptions } from '@commander-js/extra-typings';
import { byteSize, httpUrl, oneOf, percentage, wholeNumber } from './shared/flag-values.ts';
import { hostOption, insecureOption, portOption, publicUrlOption, secretFileOption } from './shared/common-flags.ts';

/** The largest fragment a coordinator accepts or asks for (--fragment-size). */
export const MAX_FRAGMENT_SIZE = 64 * 1024 * 1024;

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const env = (name: string) => `TESSERA_${name}`;

/** An origin exactly as browsers send it: scheme://host[:port], no path, no wildcard. */
const origin = (value: string) => {
  const given = value.trim().replace(/\/+$/, '');
  try {
    const parsed = new URL(given);
    if ((parsed.protocol === 'http:' || parsed.protocol === 'https:') && !given.includes('*') && parsed.origin === given.toLowerCase())
      return parsed.origin;
  } catch {
    // named below
  }
  throw new InvalidArgumentError(
    `--cors-origin must be an origin like https://app.example.com or http://localhost:8080, without path or wildcard (got "${value}").`,
  );
};

// Repeatable, and the environment variable may list several separated by commas.
const collectOrigins = (value: string, previous: string[] = []) => [
  ...previous,
  ...value
    .split(',')
    .filter((v) => v.trim() !== '')
    .map(origin),
];
const collectUrls = (value: string, previous: string[] = []) => [...previous, httpUrl('--datanode')(value)];

const readableFile = (flag: string) => (value: string) => {
  try {
    fs.accessSync(value, fs.constants.R_OK);
  } catch {
    throw new InvalidArgumentError(`${flag} must be a readable file (got "${value}").`);
  }
  return path.resolve(value);
};

const size = (flag: string, min: number, max?: number) => byteSize(flag, min, max);
const sizeList = (value: string) =>
  value
    .split(',')
    .filter((v) => v.trim() !== '')
    .map((v) => wholeNumber('--rendition-sizes', 1, 16384)(v.trim()));

/**
 * Every flag of the coordinator (and of `npm start`), keyed by its name in CoordinatorConfig.
 * The order is the order of --help.
 */
// eslint-disable-next-line max-lines-per-function -- a declarative table: one entry per flag
export const coordinatorOptions = () => ({
  host: hostOption().env(env('HOST')),
  port: portOption('coordinator port', 4000).env(env('PORT')),
  dataDir: new Option('--data-dir <dir>', 'where the index (and, for npm start, the datanodes) keep their files')
    .default('./data')
    .env(env('DATA_DIR')),
  replicationFactor: new Option('--replication-factor <n>', 'replicas of every fragment')
    .default(2)
    .argParser(wholeNumber('--replication-factor', 1, 16)),
  fragmentSize: new Option('--fragment-size <bytes>', 'bytes per fragment for new uploads (or with a unit: 2MiB)')
    .default(2 * MiB)
    .argParser(size('--fragment-size', 1, MAX_FRAGMENT_SIZE)),
  maxImageSize: new Option('--max-image-size <bytes>', 'largest image beginUpload accepts')
    .default(4 * GiB)
    .argParser(size('--max-image-size', 1)),
  maxUploadImageSize: new Option('--max-upload-image-size <bytes>', 'largest file the one-shot uploadImage accepts (it is held in memory)')
    .default(64 * MiB)
    .argParser(size('--max-upload-image-size', 1)),
  healthIntervalMs: new Option('--health-interval-ms <ms>', 'how often every datanode is sampled')
    .default(2000)
    .argParser(wholeNumber('--health-interval-ms', 50, 3_600_000)),
  downAfterFailures: new Option('--down-after <samples>', 'failed samples in a row before a datanode is DOWN')
    .default(3)
    .argParser(wholeNumber('--down-after', 1, 100)),
  cpuPercent: new Option('--degraded-cpu <percent>', 'CPU load at which a datanode is DEGRADED')
    .default(80)
    .argParser(percentage('--degraded-cpu')),
  memoryPercent: new Option('--degraded-memory <percent>', 'memory use at which a datanode is DEGRADED')
    .default(90)
    .argParser(percentage('--degraded-memory')),
  diskPercent: new Option('--degraded-disk <percent>', 'disk use at which a datanode is DEGRADED')
    .default(95)
    .argParser(percentage('--degraded-disk')),
  repairAfterSec: new Option('--repair-after <seconds>', 'seconds a datanode stays DOWN before its fragments are re-replicated')
    .default(60)
    .argParser(wholeNumber('--repair-after', 0)),
  repairBytesPerSec: new Option('--repair-rate <bytes/s>', 'bytes per second re-replication and repair may copy (0: unthrottled)')
    .default(64 * MiB)
    .argParser(size('--repair-rate', 0)),
  scrubBytesPerSec: new Option('--scrub-rate <bytes/s>', 'bytes per second the scrubber re-reads and verifies (0: no scrubbing)')
    .default(8 * MiB)
    .argParser(size('--scrub-rate', 0)),
  scrubPauseSec: new Option('--scrub-pause <seconds>', 'pause between two full scrub passes')
    .default(3600)
    .argParser(wholeNumber('--scrub-pause', 0)),
  reconcileIntervalSec: new Option('--reconcile-interval <seconds>', "how often each datanode's inventory is compared with the index")
    .default(600)
    .argParser(wholeNumber('--reconcile-interval', 1)),
  orphanGraceSec: new Option('--orphan-grace <seconds>', 'age at which a fragment file nothing references is deleted')
    .default(3600)
    .argParser(wholeNumber('--orphan-grace', 0)),
  reconcileMaxDeletions: new Option(
    '--reconcile-max-deletions <n>',
    'orphan files one reconciliation round may delete (the rest wait for the next round)',
  )
    .default(1000)
    .argParser(wholeNumber('--reconcile-max-deletions', 0)),
  recheckIndex: new Option(
    '--recheck-index',
    "at start, re-check the index against the datanodes' image records (after restoring an old copy of it)",
  ).default(false),
  metadata: new Option(
    '--metadata <sqlite-file|postgres-url>',
    'where the index lives: a SQLite file (default: index.sqlite in --data-dir) or a postgres:// URL',
  ).env(env('METADATA')),
  leaseTtlSec: new Option(
    '--lease-ttl <seconds>',
    'with several coordinators on PostgreSQL: how long the background lease lasts unrenewed (a dead leader is replaced within 4/3 of it)',
  )
    .default(10)
    .argParser(wholeNumber('--lease-ttl', 1, 600))
    .env(env('LEASE_TTL')),
  metadataTimeoutSec: new Option(
    '--metadata-timeout <seconds>',
    'with --metadata postgres://: how long an API call waits for the database before it answers METADATA_UNAVAILABLE (also the statement timeout)',
  )
    .default(5)
    .argParser(wholeNumber('--metadata-timeout', 1, 600))
    .env(env('METADATA_TIMEOUT')),
  indexSynchronous: new Option(
    '--index-synchronous <mode>',
    "SQLite synchronous mode of the index: normal (crash-safe; the datanodes' records cover a power failure) or full (every commit synced)",
  )
    .choices(['normal', 'full'] as const)
    .default('normal'),
  uploadTtlSec: new Option('--upload-ttl <seconds>', 'seconds an idle upload lives before it expires')
    .default(86400)
    .argParser(wholeNumber('--upload-ttl', 1)),
  bodyTimeoutSec: new Option('--body-timeout <seconds>', 'seconds a request body may send nothing before it is dropped')
    .default(30)
    .argParser(wholeNumber('--body-timeout', 1, 3600)),
  publicUrl: publicUrlOption("base URL used in Image.url (default: the request's own host)").env(env('PUBLIC_URL')),
  secretFile: secretFileOption(),
  insecure: insecureOption('datanodes unguarded'),
  datanodes: new Option('--datanode <url>', 'a datanode to register at start (repeatable)').argParser(collectUrls).default([] as string[]),
  anonymous: new Option('--anonymous <access>', 'what callers without a token may do: none, read or write')
    .default('none')
    .argParser(oneOf('--anonymous', ['none', 'read', 'write']))
    .env(env('ANONYMOUS')),
  adminTokenFile: new Option(
    '--admin-token-file <file>',
    'where the admin token is written when the index holds none (default <data-dir>/admin.token)',
  ),
  rateLimitPerSec: new Option('--rate-limit <requests/s>', 'requests per second per token (0: unlimited)')
    .default(5000)
    .argParser(wholeNumber('--rate-limit', 0)),
  maxOpenUploadsPerToken: new Option('--max-open-uploads <n>', 'open uploads per token')
    .default(100)
    .argParser(wholeNumber('--max-open-uploads', 1)),
  maxReservedBytesPerToken: new Option('--max-reserved-bytes <bytes>', 'bytes the open uploads of one token may reserve')
    .default(64 * GiB)
    .argParser(size('--max-reserved-bytes', 1)),
  maxWsConnectionsPerToken: new Option('--max-ws-connections <n>', 'graphql-ws connections per token')
    .default(64)
    .argParser(wholeNumber('--max-ws-connections', 1)),
  maxSubscriptionsPerToken: new Option('--max-subscriptions <n>', 'live subscriptions (SSE and graphql-ws) per token')
    .default(256)
    .argParser(wholeNumber('--max-subscriptions', 1)),
  corsOrigins: new Option('--cors-origin <origin>', 'a browser origin allowed to call the API cross-origin (repeatable; default: none)')
    .argParser(collectOrigins)
    .default([] as string[])
    .env(env('CORS_ORIGIN')),
  datanodeCaFile: new Option(
    '--datanode-ca-file <file>',
    'PEM CA certificate(s) trusted for https:// datanode URLs (besides the system CAs)',
  ).argParser(readableFile('--datanode-ca-file')),
  renditionCacheBytes: new Option(
    '--rendition-cache-bytes <bytes>',
    'bytes of renditions cached in the cluster, least-recently used evicted past it (0: no cache)',
  )
    .default(256 * MiB)
    .argParser(size('--rendition-cache-bytes', 0)),
  renditionMaxSize: new Option('--rendition-max-size <pixels>', 'largest width or height a rendition may ask for')
    .default(4096)
    .argParser(wholeNumber('--rendition-max-size', 1, 16384)),
  renditionSizes: new Option(
    '--rendition-sizes <list>',
    'comma-separated widths and heights renditions may ask for (default: any up to --rendition-max-size)',
  )
    .argParser(sizeList)
    .default([] as number[]),
  renditionMaxPixels: new Option(
    '--rendition-max-pixels <n>',
    'largest source (width x height) a rendition decodes; larger ones are refused',
  )
    .default(50_000_000)
    .argParser(wholeNumber('--rendition-max-pixels', 1)),
  renditionConcurrency: new Option('--rendition-concurrency <n>', 'renditions made at once (others wait in a bounded queue)')
    .default(2)
    .argParser(wholeNumber('--rendition-concurrency', 1, 64)),
});

type CoordinatorOptions = ReturnType<typeof coordinatorOptions>;
/** The value commander gives for one declared option (undefined included when it has no default). */
type ValueOf<O> =
  O extends Option<infer Usage, infer Preset, infer Default, infer Coerce, infer Mandatory, infer Choices>
    ? InferOptions<Record<never, never>, Usage, Default, Coerce, Mandatory, Preset, Choices>[keyof InferOptions<
        Record<never, never>,
        Usage,
        Default,
        Coerce,
        Mandatory,
        Preset,
        Choices
      >]
    : never;

/** The parsed flags, by config key. */
export type CoordinatorFlags = { [K in keyof CoordinatorOptions]: ValueOf<CoordinatorOptions[K]> };

/** DEGRADED at or above these percentages. */
export type HealthThresholds = Pick<CoordinatorFlags, 'cpuPercent' | 'memoryPercent' | 'diskPercent'>;

/**
 * What the coordinator runs with: the flags, with the three DEGRADED thresholds in one object and
 * the cluster secret itself (undefined only with --insecure) instead of where it came from.
 */
export type CoordinatorConfig = Omit<CoordinatorFlags, keyof HealthThresholds | 'secretFile' | 'insecure'> & {
  thresholds: HealthThresholds;
  secret?: string;
  /** Not a flag: set by tests only (see AuthConfig). */
  verifiedTokenTtlMs?: number;
};

/** Adds every coordinator flag to `command` (the coordinator's own, or npm start's). */
export function addCoordinatorOptions<C extends CommandUnknownOpts>(command: C): C {
  for (const option of Object.values(coordinatorOptions())) command.addOption(option as Option);
  return command;
}

/** The flags `command` parsed, by config key. */
export function readCoordinatorFlags(command: CommandUnknownOpts): CoordinatorFlags {
  const values = command.opts() as Record<string, unknown>;
  const entries = Object.entries(coordinatorOptions()).map(([key, option]) => [key, values[option.attributeName()]]);
  return Object.fromEntries(entries) as CoordinatorFlags;
}

export function configFromFlags(flags: CoordinatorFlags, secret: string | undefined): CoordinatorConfig {
  const { cpuPercent, memoryPercent, diskPercent, secretFile: _secretFile, insecure: _insecure, ...rest } = flags;
  return {
    ...rest,
    dataDir: path.resolve(flags.dataDir),
    adminTokenFile: flags.adminTokenFile === undefined ? undefined : path.resolve(flags.adminTokenFile),
    thresholds: { cpuPercent, memoryPercent, diskPercent },
    secret,
  };
}

/** Every flag's default, by config key. */
function defaultFlags(): CoordinatorFlags {
  return Object.fromEntries(Object.entries(coordinatorOptions()).map(([key, option]) => [key, option.defaultValue])) as CoordinatorFlags;
}

/** The defaults of every setting (dataDir: ./data from the working directory). */
export const DEFAULTS: Readonly<CoordinatorConfig> = configFromFlags(defaultFlags(), undefined);

/** A full config for tests and embedders: defaults plus what is given. */
export function makeConfig(overrides: Partial<CoordinatorConfig> & Pick<CoordinatorConfig, 'dataDir'>): CoordinatorConfig {
  return { ...DEFAULTS, thresholds: { ...DEFAULTS.thresholds }, datanodes: [], corsOrigins: [], renditionSizes: [], ...overrides };
}

/** Parsed flags back as arguments (to hand them to a child coordinator), minus the keys in `skip`. */
export function flagsToArgs(flags: Partial<CoordinatorFlags>, skip: ReadonlySet<keyof CoordinatorFlags> = new Set()): string[] {
  const args: string[] = [];
  for (const [key, option] of Object.entries(coordinatorOptions()) as [keyof CoordinatorFlags, Option][]) {
    const value = flags[key];
    if (!option.long || skip.has(key) || value === undefined || value === false) continue;
    if (option.isBoolean()) args.push(option.long);
    else for (const v of Array.isArray(value) ? value : [value]) args.push(option.long, String(v));
  }
  return args;
}
