// `npm run datanode`: one datanode process. Validates its flags, loads the cluster secret,
// serves, prints one "listening" JSON line on stdout, and optionally registers with a coordinator.
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { keepRegistered } from './registration.ts';
import { loadClusterSecret } from '../src/protocol/cluster-secret.ts';
import { DEFAULT_MAX_FRAGMENT_BYTES, createDatanode } from './server.ts';

const integer =
  (what: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}.`);
    }
    return n;
  };

const httpUrl = (value: string): string => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('not a URL.');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('must be an http(s) URL.');
  return value.replace(/\/+$/, '');
};

const program = new Command('datanode')
  .description('A Tessera datanode: stores fragments on disk and serves them over HTTP.')
  .option('--port <port>', 'port to listen on (0: any free port)', integer('the port', 0, 65535), 0)
  .option('--host <host>', 'address to bind', '127.0.0.1')
  .requiredOption('--data-dir <dir>', 'folder holding the fragments')
  .option('--secret-file <file>', 'file holding the cluster secret (else TESSERA_CLUSTER_SECRET)')
  .option('--insecure', 'run without a cluster secret: anyone may read and write fragments', false)
  .option('--coordinator <url>', 'coordinator to register with', httpUrl)
  .option('--public-url <url>', 'URL the coordinator should use for this datanode', httpUrl)
  .option('--health-interval-ms <n>', 'how often health is sampled', integer('the interval', 50), 1000)
  .option('--max-fragment-bytes <n>', 'largest fragment accepted', integer('the size', 1), DEFAULT_MAX_FRAGMENT_BYTES)
  .option('--register-interval-ms <n>', 'how often to re-register', integer('the interval', 50), 15_000)
  .option('--tls-cert <file>', 'PEM certificate (chain): serve HTTPS (with --tls-key)')
  .option('--tls-key <file>', 'PEM private key of --tls-cert')
  .parse();

const opts = program.opts<{
  port: number;
  host: string;
  dataDir: string;
  secretFile?: string;
  insecure: boolean;
  coordinator?: string;
  publicUrl?: string;
  healthIntervalMs: number;
  maxFragmentBytes: number;
  registerIntervalMs: number;
  tlsCert?: string;
  tlsKey?: string;
}>();

// Whatever this process creates (fragments, records, ids) is readable by its own user only.
process.umask(0o077);

// Synchronous stderr: the last lines before an exit are not lost; stdout is for the listening line.
const logger = pino({ name: 'datanode', level: process.env.LOG_LEVEL ?? 'info' }, pino.destination({ fd: 2, sync: true }));

function fail(message: string): never {
  process.stderr.write(`datanode: ${message}\n`);
  process.exit(1);
}

let secret: string | undefined;
try {
  secret = loadClusterSecret(opts.secretFile);
} catch (err) {
  fail((err as Error).message);
}
if (secret === undefined && !opts.insecure) {
  fail('no cluster secret: pass --secret-file F or set TESSERA_CLUSTER_SECRET (or --insecure to run without one)');
}
if (secret === undefined) logger.warn('--insecure: no cluster secret, every request is accepted');

let tls: { cert: Buffer; key: Buffer } | undefined;
if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) fail('--tls-cert and --tls-key go together');
if (opts.tlsCert !== undefined && opts.tlsKey !== undefined) {
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      fail(`${flag} ${file}: ${(err as Error).message}`);
    }
  };
  tls = { cert: read('--tls-cert', opts.tlsCert), key: read('--tls-key', opts.tlsKey) };
}

const datanode = await createDatanode({
  dataDir: opts.dataDir,
  secret,
  maxFragmentBytes: opts.maxFragmentBytes,
  healthIntervalMs: opts.healthIntervalMs,
  logger,
  tls,
}).catch((err: Error) => fail(`--data-dir ${opts.dataDir}: ${err.message}`));

// Handlers go in before the listening line: whoever reads that line may signal us at once.
let stopRegistering = () => {};
let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping');
  stopRegistering();
  datanode.close().then(
    () => process.exit(0),
    (err: unknown) => {
      logger.error({ err }, 'close failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

const { port, url } = await datanode
  .listen(opts.port, opts.host)
  .catch((err: Error) => fail(`--port ${opts.port} --host ${opts.host}: ${err.message}`));

if (opts.coordinator !== undefined && !stopping) {
  stopRegistering = keepRegistered({
    coordinatorUrl: opts.coordinator,
    selfUrl: opts.publicUrl ?? url,
    secret,
    logger,
    intervalMs: opts.registerIntervalMs,
  });
}

process.stdout.write(`${JSON.stringify({ event: 'listening', port, url })}\n`);
logger.info({ port, url, dataDir: opts.dataDir }, 'datanode listening');
