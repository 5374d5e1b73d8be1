// `npm run datanode`: one datanode process. Validates its flags, loads the cluster secret,
// serves, prints one "listening" JSON line on stdout, and optionally registers with a coordinator.
import { readFileSync } from 'node:fs';
import { Command, Option } from '@commander-js/extra-typings';
import { pino } from 'pino';
import {
  clusterSecretFromFlags,
  hostOption,
  insecureOption,
  portOption,
  publicUrlOption,
  secretFileOption,
} from '../src/shared/common-flags.ts';
import { byteSize, httpUrlList, wholeNumber } from '../src/shared/flag-values.ts';
import { keepRegistered } from './registration.ts';
import { DEFAULT_MAX_FRAGMENT_BYTES, createDatanode } from './server.ts';

const program = new Command('datanode')
  .description('A Tessera datanode: stores fragments on disk and serves them over HTTP.')
  .addOption(portOption('port to listen on (0: any free port)', 0))
  .addOption(hostOption())
  .requiredOption('--data-dir <dir>', 'folder holding the fragments')
  .addOption(secretFileOption())
  .addOption(insecureOption('anyone may read and write fragments'))
  .addOption(
    new Option(
      '--coordinator <urls>',
      'coordinator to register with, or several separated by commas (the first that answers; the next when it stops answering)',
    ).argParser(httpUrlList('--coordinator')),
  )
  .addOption(publicUrlOption('URL the coordinator should use for this datanode'))
  .addOption(
    new Option('--health-interval-ms <n>', 'how often health is sampled').default(1000).argParser(wholeNumber('--health-interval-ms', 50)),
  )
  .addOption(
    new Option('--max-fragment-bytes <n>', 'largest fragment accepted (or with a unit: 64MiB)')
      .default(DEFAULT_MAX_FRAGMENT_BYTES)
      .argParser(byteSize('--max-fragment-bytes', 1)),
  )
  .addOption(
    new Option('--register-interval-ms <n>', 'how often to re-register')
      .default(15_000)
      .argParser(wholeNumber('--register-interval-ms', 50)),
  )
  .option('--tls-cert <file>', 'PEM certificate (chain): serve HTTPS (with --tls-key)')
  .option('--tls-key <file>', 'PEM private key of --tls-cert')
  .parse();

const opts = program.opts();

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
  secret = clusterSecretFromFlags(opts);
} catch (err) {
  fail((err as Error).message);
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
    coordinatorUrls: opts.coordinator,
    selfUrl: opts.publicUrl ?? url,
    secret,
    logger,
    intervalMs: opts.registerIntervalMs,
  });
}

process.stdout.write(`${JSON.stringify({ event: 'listening', port, url })}\n`);
logger.info({ port, url, dataDir: opts.dataDir }, 'datanode listening');
