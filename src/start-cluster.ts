// `npm start`: a coordinator and N datanodes as child processes,
// the coordinator on --port P and datanode i on P+i, everything under --data-dir; Ctrl-C or
// SIGTERM stops them all. The cluster secret is created on the first start.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from '@commander-js/extra-typings';
import { addCoordinatorOptions, flagsToArgs, readCoordinatorFlags } from './config.ts';
import { wholeNumber } from './shared/flag-values.ts';
import pino from 'pino';
import { humanLogLine } from './launcher/log-lines.ts';
import { pidFiles, SUPERVISOR } from './launcher/pid-files.ts';
import { GRAPHQL_LABEL } from './launcher/banner.ts';
import {
  COORDINATOR_ENV,
  COORDINATOR_NODE_ARGS,
  DATANODE_NODE_ARGS,
  startServiceProcess,
  type ServiceProcess,
} from './launcher/service-process.ts';
import { ADMIN_TOKEN_FILE } from './auth/admin-token-file.ts';
import { prepareServerBundle } from './launcher/server-bundle.ts';

export const SECRET_FILE = 'cluster.secret';

const program = addCoordinatorOptions(new Command('npm start'))
  .description('Start a local Tessera cluster: the coordinator and N datanodes.')
  .addOption(new Option('--datanodes <n>', 'how many datanodes to start').default(3).argParser(wholeNumber('--datanodes', 1, 64)))
  .showHelpAfterError();
program.parse();
const flags = { ...readCoordinatorFlags(program), datanodeCount: program.opts().datanodes };
const log = pino({ name: 'tessera' }, { write: (line: string) => process.stderr.write(humanLogLine('tessera', line.trimEnd()) + '\n') });
const dataDir = path.resolve(flags.dataDir);

if (flags.port + flags.datanodeCount > 65535)
  program.error(`--port ${flags.port} leaves no room for ${flags.datanodeCount} datanode ports above it.`);
// Secure by default: the whole tree (secret, pid files, index, fragments) is the user's alone.
process.umask(0o077);
fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
fs.chmodSync(dataDir, 0o700);

/** The secret file given, or <data-dir>/cluster.secret, created (random, 0600) on the first start. */
function clusterSecretFile(): string | undefined {
  if (flags.insecure) return undefined;
  if (flags.secretFile) return path.resolve(flags.secretFile);
  const file = path.join(dataDir, SECRET_FILE);
  if (!fs.existsSync(file)) {
    fs.writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
    log.info({ file }, 'created the cluster secret');
  }
  return file;
}

const pids = pidFiles(dataDir);
const other = pids.liveSupervisor();
if (other !== undefined) {
  program.error(`Another npm start (pid ${other}) is running on ${dataDir}; stop it first (kill ${other}).`);
}
const ended = await pids.endLeftovers();
for (const p of ended) log.warn({ process: p.name, pid: p.pid }, 'ended a process left running by an earlier start on this data dir');
pids.clear();
pids.write(SUPERVISOR, process.pid);

const children: ServiceProcess[] = [];
let stopping = false;

async function stopAll(code: number): Promise<void> {
  if (stopping) return; // Ctrl-C reaches us twice: from the terminal and relayed by tsx
  stopping = true;
  await Promise.all(children.map((c) => c.stop()));
  pids.clear();
  process.exit(code);
}
// From here on a signal ends this process through stopAll, so its exit hooks (the server bundle's
// removal) run; SIGHUP too (the terminal closed).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stopAll(0));

// The coordinator and the datanodes start from a bundle built now (removed when this process exits).
// One that cannot be written (a read-only node_modules) is no reason not to start: they run
// through tsx then, as they did before there was a bundle.
await prepareServerBundle().catch((err: unknown) =>
  log.warn({ err: (err as Error).message }, 'could not build the server bundle; the coordinator and datanodes run through tsx'),
);
const secretFile = clusterSecretFile();
const secretArgs = secretFile ? ['--secret-file', secretFile] : ['--insecure'];

function watch(child: ServiceProcess, essential: boolean) {
  children.push(child);
  pids.write(child.name, child.pid);
  void child.exited.then(({ code, signal }) => {
    if (stopping) return;
    log.error({ process: child.name, code, signal }, essential ? 'the coordinator stopped; stopping the cluster' : 'a datanode stopped');
    if (essential) void stopAll(1);
  });
}

try {
  const datanodes = await Promise.all(
    Array.from({ length: flags.datanodeCount }, async (_, i) => {
      const name = `datanode-${i + 1}`;
      const port = flags.port === 0 ? 0 : flags.port + i + 1;
      const child = await startServiceProcess(
        name,
        'datanode/main.ts',
        [
          '--port',
          String(port),
          '--data-dir',
          path.join(dataDir, name),
          '--health-interval-ms',
          String(Math.min(flags.healthIntervalMs, 1000)),
          ...secretArgs,
        ],
        { nodeArgs: DATANODE_NODE_ARGS },
      );
      watch(child, false);
      return child;
    }),
  );
  const skip = new Set(['dataDir', 'secretFile', 'insecure', 'adminTokenFile'] as const);
  // <data-dir>/admin.token, where the CLI looks for it: written by the coordinator when its index holds no admin token.
  const adminTokenFile = flags.adminTokenFile ? path.resolve(flags.adminTokenFile) : path.join(dataDir, ADMIN_TOKEN_FILE);
  const coordinator = await startServiceProcess(
    'coordinator',
    'src/main.ts',
    [
      ...flagsToArgs(flags, skip),
      '--data-dir',
      path.join(dataDir, 'coordinator'),
      '--admin-token-file',
      adminTokenFile,
      ...secretArgs,
      ...datanodes.flatMap((d) => ['--datanode', d.url]),
    ],
    { nodeArgs: COORDINATOR_NODE_ARGS, env: COORDINATOR_ENV },
  );
  watch(coordinator, true);
  process.stdout.write(
    [
      '',
      `Tessera is up: ${datanodes.length} datanode${datanodes.length === 1 ? '' : 's'}, replication factor ${flags.replicationFactor}, data in ${dataDir}`,
      `  ${GRAPHQL_LABEL}  ${coordinator.url}/graphql`,
      `  images                ${coordinator.url}/images/{name}`,
      `  admin token           ${adminTokenFile} (send it as Authorization: Bearer <token>; the tessera CLI finds it)`,
      ...datanodes.map((d) => `  ${d.name.padEnd(20)}  ${d.url}`),
      'Ctrl-C stops the cluster.',
      '',
    ].join('\n') + '\n',
  );
} catch (err) {
  log.error({ err: (err as Error).message }, 'the cluster did not start');
  await stopAll(1);
}
