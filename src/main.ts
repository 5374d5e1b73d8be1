// `npm run coordinator`: the coordinator alone, configured by flags (see --help).
import { Command } from '@commander-js/extra-typings';
import { addCoordinatorOptions, configFromFlags, readCoordinatorFlags } from './config.ts';
import { clusterSecretFromFlags } from './shared/common-flags.ts';
import { createLogger, flushLog } from './logger.ts';
import { startCoordinator } from './start-coordinator.ts';

const program = addCoordinatorOptions(new Command('tessera-coordinator'))
  .description('The Tessera coordinator: GraphQL API, fragment index, health monitor.')
  .showHelpAfterError();
program.parse();
const flags = readCoordinatorFlags(program);

// What the coordinator creates (index, backups, tokens) is readable by its own user only.
process.umask(0o077);
const log = createLogger('coordinator');
let secret: string | undefined;
try {
  secret = clusterSecretFromFlags(flags);
} catch (err) {
  program.error((err as Error).message);
}

const running = await startCoordinator(configFromFlags(flags, secret), log);
// What it logged while starting (where the admin token is, an interrupted shutdown cleaned up) is
// on stderr before it says it is ready.
await flushLog(log);
process.stdout.write(JSON.stringify({ event: 'listening', port: running.port, url: running.url }) + '\n');
log.info({ url: running.url, dataDir: running.app.config.dataDir }, 'coordinator listening; GraphiQL at /graphql');

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return; // Ctrl-C reaches us twice: from the terminal and relayed by a parent
  stopping = true;
  log.info({ signal }, 'stopping');
  await running.stop();
  process.exit(0);
};
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
