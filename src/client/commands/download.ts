// `tessera download <name>`: an image verified against its sha256, written atomically (or to
// stdout with -o -).
import type { Command } from 'commander';
import { formatBytes, localNameOf } from '../cli-format.ts';
import { createProgressView } from '../cli-progress-bar.ts';
import { examples, out, printJson, UsageError, type CommandContext } from './command-context.ts';

export function addDownloadCommand(program: Command, ctx: CommandContext): void {
  program
    .command('download')
    .description('Download an image, verified against its sha256, written atomically.')
    .argument('<name>', 'image name')
    .option('-o, --output <file>', 'where to write it ("-" for stdout; default: the last segment of the name)')
    .addHelpText(
      'after',
      examples('tessera download cat.png', 'tessera download cats/tabby.png -o tabby.png', 'tessera download cat.png -o - | display'),
    )
    .action(
      ctx.action(async (name: string, opts: { output?: string }) => {
        const controller = new AbortController();
        const onSigint = () => controller.abort(new Error('Interrupted.'));
        process.once('SIGINT', onSigint);
        try {
          await download(ctx, name, opts.output, controller.signal);
        } finally {
          process.off('SIGINT', onSigint);
        }
      }),
    );
}

async function download(ctx: CommandContext, name: string, output: string | undefined, signal: AbortSignal): Promise<void> {
  const { json } = ctx.globals();
  const c = ctx.client();
  if (output === '-') {
    await c.downloadTo(name, process.stdout, { signal, end: false });
    return;
  }
  const file = output ?? localNameOf(name);
  if (!file) throw new UsageError(`"${name}" does not end in a usable file name; give one with -o.`);
  const progress = createProgressView(!json && Boolean(process.stderr.isTTY));
  try {
    const r = await c.download(name, file, {
      signal,
      onProgress: (p) => progress.update(`downloading ${name}`, p.bytesDone, p.totalBytes),
    });
    progress.stop();
    if (json) printJson(r);
    else out(`downloaded ${name} to ${file} (${formatBytes(r.size)}, sha256 ${r.sha256} verified)`);
  } finally {
    progress.stop();
  }
}
