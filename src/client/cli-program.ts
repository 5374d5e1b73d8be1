// The `tessera` command: commander subcommands over the client library, human output by
// default, one JSON document per command with --json, `error CODE: message` on failure. Each
// subcommand lives in commands/; this module wires them and maps failures to exit statuses.
import { Command, CommanderError, Option } from 'commander';
import { createTesseraClient, DEFAULT_URL, type TesseraClient } from './client.ts';
import { asClientError } from './errors.ts';
import { httpUrlList } from '../shared/flag-values.ts';
import { findLocalAdminToken } from '../auth/admin-token-file.ts';
import { err, examples, EXIT, printError, UsageError, type CommandContext, type GlobalOptions } from './commands/command-context.ts';
import { addUploadCommand } from './commands/upload.ts';
import { addDownloadCommand } from './commands/download.ts';
import { addLsCommand } from './commands/ls.ts';
import { addStatCommand } from './commands/stat.ts';
import { addRmCommand } from './commands/rm.ts';
import { addNodesCommand } from './commands/nodes.ts';
import { addClusterCommand } from './commands/cluster.ts';
import { addWatchCommand } from './commands/watch.ts';
import { addTokenCommands } from './commands/token.ts';

export { EXIT } from './commands/command-context.ts';

/** --url / TESSERA_URL, checked here so a bad list is a usage error (exit 2) before anything is sent; kept as given. */
const urlList = (value: string): string => (httpUrlList('--url')(value), value);

function createProgram(): Command {
  return new Command('tessera')
    .description('Store, fetch, list and watch images on a Tessera cluster.')
    .addOption(
      new Option('--url <urls>', 'the coordinator, or several separated by commas (tried in turn when one cannot be reached)')
        .env('TESSERA_URL')
        .default(DEFAULT_URL)
        .argParser(urlList),
    )
    .addOption(
      new Option(
        '--token <token>',
        'client token (default: the admin token in ./data/admin.token or $TESSERA_DATA_DIR/admin.token, if readable)',
      ).env('TESSERA_TOKEN'),
    )
    .option('--json', 'print one JSON document per command (one JSON object per line for watch)')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      // commander's own usage errors, in the same shape as every other error
      outputError: (text, write) => write(`error USAGE: ${text.replace(/^error: /, '').trimEnd()}\n(see tessera --help)\n`),
    })
    .addHelpText(
      'after',
      examples(
        'tessera upload cat.png',
        'tessera ls --prefix cats/',
        'TESSERA_URL=http://10.0.0.5:4000 tessera nodes --json',
        'tessera --url http://10.0.0.5:4000,http://10.0.0.6:4000 upload cat.png',
      ),
    );
}

/** Runs the command line; resolves to the exit status (the caller sets it). */
export async function runCli(argv: string[]): Promise<number> {
  let status: number = EXIT.OK;
  let client: TesseraClient | undefined;
  const program = createProgram();
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const ctx: CommandContext = {
    globals,
    // On the coordinator's machine, the admin token npm start wrote is found without being told.
    client: () => (client ??= createTesseraClient({ url: globals().url, token: globals().token || findLocalAdminToken() })),
    setStatus: (s) => void (status = s),
    action:
      (body) =>
      async (...args) => {
        try {
          await body(...args);
        } catch (e) {
          if (e instanceof UsageError) throw e;
          const ce = asClientError(e);
          printError(ce);
          status = ce.code === 'ABORTED' ? EXIT.INTERRUPTED : EXIT.FAILED;
        }
      },
  };
  for (const add of [
    addUploadCommand,
    addDownloadCommand,
    addLsCommand,
    addStatCommand,
    addRmCommand,
    addNodesCommand,
    addClusterCommand,
    addWatchCommand,
    addTokenCommands,
  ])
    add(program, ctx);

  try {
    await program.parseAsync(argv);
  } catch (e) {
    return exitStatusOf(e);
  } finally {
    client?.close();
  }
  return status;
}

/** The exit status for what escaped the commands: a usage error, commander's own exits, or a failure. */
function exitStatusOf(e: unknown): number {
  if (e instanceof UsageError) {
    err(`error USAGE: ${e.message}`);
    return EXIT.USAGE;
  }
  if (e instanceof CommanderError) {
    // help and version are not errors; everything else commander throws is a usage error
    return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version'
      ? EXIT.OK
      : EXIT.USAGE;
  }
  printError(asClientError(e));
  return EXIT.FAILED;
}
