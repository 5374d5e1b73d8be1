// `tessera upload <file...>`: chunked, resumable uploads, one result per file; Ctrl-C leaves the
// upload open on the cluster so the same command resumes it.
import type { Command } from 'commander';
import { formatBytes } from '../cli-format.ts';
import { createProgressView } from '../cli-progress-bar.ts';
import { asClientError } from '../errors.ts';
import type { UploadResult } from '../upload.ts';
import { err, examples, EXIT, out, printError, printJson, UsageError, type CommandContext } from './command-context.ts';
import { wholeNumber } from '../../shared/flag-values.ts';

interface UploadOptions {
  name?: string;
  parallel: number;
  base64?: boolean;
  contentType?: string;
  resume: boolean;
}

export function addUploadCommand(program: Command, ctx: CommandContext): void {
  program
    .command('upload')
    .description('Upload image files (chunked, several fragments in flight, resumable).')
    .argument('<file...>', 'files to upload')
    .option('-n, --name <name>', 'image name (one file only; default: the file name)')
    .option('-p, --parallel <k>', 'fragments in flight', wholeNumber('--parallel', 1, 64), 4)
    .option('--base64', 'send fragments as base64 JSON instead of raw binary bodies')
    .option('-t, --content-type <type>', 'media type (default: guessed from the extension)')
    .option('--no-resume', 'start over instead of resuming an interrupted upload of the same file')
    .addHelpText(
      'after',
      '\nCtrl-C leaves the upload open on the cluster; the same command run again sends only the missing fragments.\n' +
        'With --json, prints an array with one object per file: name, size, sha256, url, uploadId,\nresumed, fragmentCount, sentFragments, skippedFragments (or error).\n' +
        examples(
          'tessera upload cat.png dog.jpg',
          'tessera upload --name cats/tabby.png ./IMG_0042.png',
          'tessera upload --parallel 8 --json big.tiff',
        ),
    )
    .action(ctx.action((files: string[], opts: UploadOptions) => uploadFiles(ctx, files, opts)));
}

async function uploadFiles(ctx: CommandContext, files: string[], opts: UploadOptions): Promise<void> {
  if (opts.name !== undefined && files.length > 1) throw new UsageError('--name names one image; give one file with it.');
  const { json } = ctx.globals();
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) process.exit(EXIT.INTERRUPTED); // a second Ctrl-C: leave at once
    controller.abort(new Error('Interrupted.'));
  };
  process.on('SIGINT', onSigint);
  const results: Record<string, unknown>[] = [];
  try {
    for (const file of files) {
      if (controller.signal.aborted) break;
      results.push(await uploadFile(ctx, file, opts, controller.signal));
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (json) printJson(results);
}

/** Uploads one file; a failure is printed, sets the status and becomes the file's result. */
async function uploadFile(ctx: CommandContext, file: string, opts: UploadOptions, signal: AbortSignal): Promise<Record<string, unknown>> {
  const { json } = ctx.globals();
  const progress = createProgressView(!json && Boolean(process.stderr.isTTY));
  try {
    const r: UploadResult = await ctx.client().upload(file, {
      name: opts.name,
      parallel: opts.parallel,
      transport: opts.base64 ? 'base64' : 'raw',
      contentType: opts.contentType,
      resume: opts.resume,
      signal,
      onProgress: (p) =>
        progress.update(`${p.phase === 'hashing' ? 'hashing' : p.resumed ? 'resuming' : 'uploading'} ${p.name}`, p.bytesDone, p.totalBytes),
    });
    progress.stop();
    const { image } = r;
    if (!json) {
      const how = r.resumed
        ? `resumed: sent ${r.sentFragments} of ${r.fragmentCount} fragments`
        : `${r.fragmentCount} fragment${r.fragmentCount === 1 ? '' : 's'}`;
      out(`uploaded ${image.name} (${formatBytes(image.size)}, ${how}) sha256 ${image.sha256}`);
    }
    return {
      file,
      name: image.name,
      size: image.size,
      contentType: image.contentType,
      sha256: image.sha256,
      url: image.url,
      uploadId: r.uploadId,
      resumed: r.resumed,
      fragmentCount: r.fragmentCount,
      sentFragments: r.sentFragments,
      skippedFragments: r.skippedFragments,
      retries: r.retries,
    };
  } catch (e) {
    progress.stop();
    const ce = asClientError(e, signal);
    printError(ce);
    if (ce.code === 'ABORTED') {
      ctx.setStatus(EXIT.INTERRUPTED);
      if (ce.uploadId) err(`The upload of ${file} is left open (id ${ce.uploadId}): run the same command again to resume it.`);
    } else ctx.setStatus(EXIT.FAILED);
    return {
      file,
      name: opts.name ?? file,
      error: { code: ce.code, message: ce.message, ...(ce.uploadId ? { uploadId: ce.uploadId } : {}) },
    };
  }
}
