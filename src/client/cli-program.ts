// The `tessera` command: commander subcommands over the client library, human output by
// default, one JSON document per command with --json, `error CODE: message` on failure.
import { Command, CommanderError, Option } from 'commander';
import { createTesseraClient, DEFAULT_URL, type TesseraClient } from './client.ts';
import { formatBytes, formatPercent, formatTable, localNameOf } from './cli-format.ts';
import { createProgressView } from './cli-progress-bar.ts';
import { asClientError, TesseraClientError } from './errors.ts';
import type { ClusterEvent } from './types.ts';
import type { UploadResult } from './upload.ts';
import { addTokenCommands } from './cli-tokens.ts';
import { findLocalAdminToken } from '../auth/admin-token-file.ts';
import { wholeNumber } from '../shared/flag-values.ts';

/** Exit statuses: 1 a failed operation, 2 a usage error, 130 interrupted (as shells report SIGINT). */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, INTERRUPTED: 130 } as const;

class UsageError extends Error {}

interface GlobalOptions {
  url: string;
  token?: string;
  json?: boolean;
}

const out = (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
const err = (text: string) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
const printJson = (value: unknown): void => void out(JSON.stringify(value, null, 2));
const printError = (e: TesseraClientError) => err(`error ${e.code}: ${e.message}`);

const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

/** Runs the command line; resolves to the exit status (the caller sets it). */
export async function runCli(argv: string[]): Promise<number> {
  let status: number = EXIT.OK;
  let client: TesseraClient | undefined;

  const program = new Command('tessera')
    .description('Store, fetch, list and watch images on a Tessera cluster.')
    .addOption(new Option('--url <url>', 'the coordinator').env('TESSERA_URL').default(DEFAULT_URL))
    .addOption(new Option('--token <token>', 'client token (default: the admin token in ./data/admin.token or $TESSERA_DATA_DIR/admin.token, if readable)').env('TESSERA_TOKEN'))
    .option('--json', 'print one JSON document per command (one JSON object per line for watch)')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      // commander's own usage errors, in the same shape as every other error
      outputError: (text, write) => write(`error USAGE: ${text.replace(/^error: /, '').trimEnd()}\n(see tessera --help)\n`),
    })
    .addHelpText('after', examples('tessera upload cat.png', 'tessera ls --prefix cats/', 'TESSERA_URL=http://10.0.0.5:4000 tessera nodes --json'));

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  // On the coordinator's machine, the admin token npm start wrote is found without being told.
  const getClient = () => (client ??= createTesseraClient({ url: globals().url, token: globals().token || findLocalAdminToken() }));
  /** Runs one command's body: errors become `error CODE: message` and status 1. */
  const action =
    <A extends unknown[]>(body: (...args: A) => Promise<void>) =>
    async (...args: A) => {
      try {
        await body(...args);
      } catch (e) {
        if (e instanceof UsageError) throw e;
        const ce = asClientError(e);
        printError(ce);
        status = ce.code === 'ABORTED' ? EXIT.INTERRUPTED : EXIT.FAILED;
      }
    };

  program
    .command('upload')
    .description('Upload image files (chunked, several fragments in flight, resumable).')
    .argument('<file...>', 'files to upload')
    .option('-n, --name <name>', 'image name (one file only; default: the file name)')
    .option('-p, --parallel <k>', 'fragments in flight', wholeNumber('--parallel', 1, 64), 4)
    .option('--base64', 'send fragments as base64 JSON instead of binary multipart')
    .option('-t, --content-type <type>', 'media type (default: guessed from the extension)')
    .option('--no-resume', 'start over instead of resuming an interrupted upload of the same file')
    .addHelpText(
      'after',
      '\nCtrl-C leaves the upload open on the cluster; the same command run again sends only the missing fragments.\n' +
        'With --json, prints an array with one object per file: name, size, sha256, url, uploadId,\nresumed, fragmentCount, sentFragments, skippedFragments (or error).\n' +
        examples('tessera upload cat.png dog.jpg', 'tessera upload --name cats/tabby.png ./IMG_0042.png', 'tessera upload --parallel 8 --json big.tiff'),
    )
    .action(
      action(async (files: string[], opts: { name?: string; parallel: number; base64?: boolean; contentType?: string; resume: boolean }) => {
        if (opts.name !== undefined && files.length > 1) throw new UsageError('--name names one image; give one file with it.');
        const { json } = globals();
        const c = getClient();
        const controller = new AbortController();
        let interrupts = 0;
        const onSigint = () => {
          if (++interrupts > 1) process.exit(EXIT.INTERRUPTED); // a second Ctrl-C: leave at once
          controller.abort(new Error('Interrupted.'));
        };
        process.on('SIGINT', onSigint);
        const results: Record<string, unknown>[] = [];
        const progress = createProgressView(!json && Boolean(process.stderr.isTTY));
        try {
          for (const file of files) {
            if (controller.signal.aborted) break;
            try {
              const r: UploadResult = await c.upload(file, {
                name: opts.name,
                parallel: opts.parallel,
                transport: opts.base64 ? 'base64' : 'multipart',
                contentType: opts.contentType,
                resume: opts.resume,
                signal: controller.signal,
                onProgress: (p) => progress.update(`${p.phase === 'hashing' ? 'hashing' : p.resumed ? 'resuming' : 'uploading'} ${p.name}`, p.bytesDone, p.totalBytes),
              });
              progress.stop();
              const { image } = r;
              results.push({ file, name: image.name, size: image.size, contentType: image.contentType, sha256: image.sha256, url: image.url, uploadId: r.uploadId, resumed: r.resumed, fragmentCount: r.fragmentCount, sentFragments: r.sentFragments, skippedFragments: r.skippedFragments, retries: r.retries });
              if (!json) {
                const how = r.resumed ? `resumed: sent ${r.sentFragments} of ${r.fragmentCount} fragments` : `${r.fragmentCount} fragment${r.fragmentCount === 1 ? '' : 's'}`;
                out(`uploaded ${image.name} (${formatBytes(image.size)}, ${how}) sha256 ${image.sha256}`);
              }
            } catch (e) {
              progress.stop();
              const ce = asClientError(e, controller.signal);
              results.push({ file, name: opts.name ?? file, error: { code: ce.code, message: ce.message, ...(ce.uploadId ? { uploadId: ce.uploadId } : {}) } });
              printError(ce);
              if (ce.code === 'ABORTED') {
                status = EXIT.INTERRUPTED;
                if (ce.uploadId) err(`The upload of ${file} is left open (id ${ce.uploadId}): run the same command again to resume it.`);
              } else status = EXIT.FAILED;
            }
          }
        } finally {
          process.off('SIGINT', onSigint);
        }
        if (json) printJson(results);
      }),
    );

  program
    .command('download')
    .description('Download an image, verified against its sha256, written atomically.')
    .argument('<name>', 'image name')
    .option('-o, --output <file>', 'where to write it ("-" for stdout; default: the last segment of the name)')
    .addHelpText('after', examples('tessera download cat.png', 'tessera download cats/tabby.png -o tabby.png', 'tessera download cat.png -o - | display'))
    .action(
      action(async (name: string, opts: { output?: string }) => {
        const { json } = globals();
        const c = getClient();
        const controller = new AbortController();
        const onSigint = () => controller.abort(new Error('Interrupted.'));
        process.once('SIGINT', onSigint);
        try {
          if (opts.output === '-') {
            await c.downloadTo(name, process.stdout, { signal: controller.signal, end: false });
            return;
          }
          const output = opts.output ?? localNameOf(name);
          if (!output) throw new UsageError(`"${name}" does not end in a usable file name; give one with -o.`);
          const progress = createProgressView(!json && Boolean(process.stderr.isTTY));
          try {
            const r = await c.download(name, output, { signal: controller.signal, onProgress: (p) => progress.update(`downloading ${name}`, p.bytesDone, p.totalBytes) });
            progress.stop();
            if (json) printJson(r);
            else out(`downloaded ${name} to ${opts.output ?? output} (${formatBytes(r.size)}, sha256 ${r.sha256} verified)`);
          } finally {
            progress.stop();
          }
        } finally {
          process.off('SIGINT', onSigint);
        }
      }),
    );

  program
    .command('ls')
    .description('List images by name (one page of --first, or --all).')
    .option('--prefix <prefix>', 'only names that start with it')
    .option('--first <n>', 'page size', wholeNumber('--first', 0, 1000), 50)
    .option('--after <cursor>', 'the page after this cursor (endCursor of the previous page)')
    .option('-a, --all', 'every matching image, page after page')
    .addHelpText('after', '\nWith --json: { images, totalCount, pageInfo } (without pageInfo for --all).\n' + examples('tessera ls', 'tessera ls --prefix cats/ --all', 'tessera ls --json --first 100 --after <endCursor>'))
    .action(
      action(async (opts: { prefix?: string; first: number; after?: string; all?: boolean }) => {
        const { json } = globals();
        const c = getClient();
        let images;
        let pageInfo;
        let totalCount;
        if (opts.all) {
          images = [];
          for await (const image of c.listAll({ prefix: opts.prefix })) images.push(image);
          totalCount = images.length;
        } else {
          ({ images, pageInfo, totalCount } = await c.list({ prefix: opts.prefix, first: opts.first, after: opts.after }));
        }
        if (json) return printJson(pageInfo ? { images, totalCount, pageInfo } : { images, totalCount });
        if (images.length > 0) {
          out(formatTable(['NAME', 'SIZE', 'TYPE', 'CREATED'], images.map((i) => [i.name, formatBytes(i.size), i.contentType, i.createdAt]), [1]));
        }
        if (pageInfo?.hasNextPage) err(`${images.length} of ${totalCount} shown; more with --after ${pageInfo.endCursor} (or --all).`);
        else if (images.length === 0) err('no images');
      }),
    );

  program
    .command('stat')
    .description('Show one image: size, type, sha256, and every fragment with its replicas.')
    .argument('<name>', 'image name')
    .addHelpText('after', examples('tessera stat cat.png', 'tessera stat cat.png --json'))
    .action(
      action(async (name: string) => {
        const image = await getClient().stat(name);
        if (globals().json) return printJson(image);
        out(
          formatTable(
            ['FIELD', 'VALUE'],
            [
              ['name', image.name],
              ['size', `${formatBytes(image.size)} (${image.size} bytes)`],
              ['content type', image.contentType],
              ['sha256', image.sha256],
              ['created', image.createdAt],
              ['url', image.url],
              ['fragments', `${image.fragmentCount} of up to ${formatBytes(image.fragmentSize)}`],
            ],
          ).replace(/^.*\n/, ''), // a key/value block needs no header row
        );
        out('');
        out(
          formatTable(
            ['#', 'SIZE', 'SHA256', 'REPLICAS'],
            image.fragments.map((f) => [String(f.index), formatBytes(f.size), `${f.sha256.slice(0, 16)}…`, f.replicas.map((r) => `${r.id} (${r.status})`).join(', ') || 'none']),
            [0, 1],
          ),
        );
      }),
    );

  program
    .command('rm')
    .description('Delete images (and all their fragment replicas).')
    .argument('<name...>', 'image names')
    .option('-f, --force', 'a name that does not exist is not an error')
    .addHelpText('after', '\nWith --json: an array of { name, deleted }.\n' + examples('tessera rm cat.png dog.jpg', 'tessera ls --json --prefix tmp/ | jq -r ".images[].name" | xargs tessera rm'))
    .action(
      action(async (names: string[], opts: { force?: boolean }) => {
        const c = getClient();
        const results = [];
        for (const name of names) {
          try {
            const deleted = await c.remove(name);
            results.push({ name, deleted });
            if (!deleted && !opts.force) {
              printError(new TesseraClientError('IMAGE_NOT_FOUND', `No stored image is named "${name}".`));
              status = EXIT.FAILED;
            } else if (!globals().json && deleted) out(`deleted ${name}`);
          } catch (e) {
            const ce = asClientError(e);
            results.push({ name, deleted: false, error: { code: ce.code, message: ce.message } });
            printError(ce);
            status = EXIT.FAILED;
          }
        }
        if (globals().json) printJson(results);
      }),
    );

  program
    .command('nodes')
    .description('List the datanodes with their status and last health sample.')
    .addHelpText('after', examples('tessera nodes', 'tessera nodes --json'))
    .action(
      action(async () => {
        const nodes = await getClient().nodes();
        if (globals().json) return printJson(nodes);
        out(
          formatTable(
            ['ID', 'URL', 'STATUS', 'CPU', 'MEMORY', 'DISK', 'FRAGMENTS', 'STORED'],
            nodes.map((n) => [n.id, n.url, n.status, formatPercent(n.cpuPercent), formatPercent(n.memoryPercent), formatPercent(n.diskPercent), String(n.fragmentCount), formatBytes(n.storedBytes)]),
            [3, 4, 5, 6, 7],
          ),
        );
      }),
    );

  program
    .command('cluster')
    .description('Cluster-wide figures: datanodes, images, bytes stored, under-replicated fragments.')
    .addHelpText('after', examples('tessera cluster', 'tessera cluster --json'))
    .action(
      action(async () => {
        const s = await getClient().cluster();
        if (globals().json) return printJson(s);
        out(`datanodes                  ${s.liveDatanodeCount} live of ${s.datanodeCount}`);
        out(`replication factor         ${s.replicationFactor}`);
        out(`fragment size              ${formatBytes(s.fragmentSize)}`);
        out(`images                     ${s.imageCount} (${formatBytes(s.storedBytes)})`);
        out(`under-replicated fragments ${s.underReplicatedFragments}`);
      }),
    );

  program
    .command('watch')
    .description('Print live cluster events, one line each, until Ctrl-C.')
    .addHelpText('after', '\nOnce subscribed, "watching <url>" goes to stderr. With --json, one JSON object per line:\n{ "__typename": "ImageStored", "at", "message", "name", "size" } and the like.\n' + examples('tessera watch', 'tessera watch --json | jq -c "select(.__typename == \\"ImageStored\\")"'))
    .action(
      action(async () => {
        const { json } = globals();
        const c = getClient();
        const controller = new AbortController();
        const stop = () => controller.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        const print = (e: ClusterEvent) => out(json ? JSON.stringify(e) : `${e.at}  ${e.__typename.padEnd(21)}  ${e.message}`);
        const sub = c.subscribe(print, { signal: controller.signal, retryAttempts: Infinity });
        try {
          await sub.ready;
          err(`watching ${c.url} (Ctrl-C to stop)`);
        } catch {
          // the reason shows in `done`
        }
        try {
          await sub.done;
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      }),
    );

  addTokenCommands(program, { client: getClient, json: () => globals().json === true, out, action });

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`error USAGE: ${e.message}`);
      return EXIT.USAGE;
    }
    if (e instanceof CommanderError) {
      // help and version are not errors; everything else commander throws is a usage error
      return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version' ? EXIT.OK : EXIT.USAGE;
    }
    printError(asClientError(e));
    return EXIT.FAILED;
  } finally {
    client?.close();
  }
  return status;
}
