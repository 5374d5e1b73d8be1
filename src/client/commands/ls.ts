// `tessera ls`: image names, one page (--first/--after) or every page (--all).
import type { Command } from 'commander';
import { formatBytes, formatTable } from '../cli-format.ts';
import { err, examples, out, printJson, type CommandContext } from './command-context.ts';
import { wholeNumber } from '../../shared/flag-values.ts';

interface LsOptions {
  prefix?: string;
  first: number;
  after?: string;
  all?: boolean;
}

export function addLsCommand(program: Command, ctx: CommandContext): void {
  program
    .command('ls')
    .description('List images by name (one page of --first, or --all).')
    .option('--prefix <prefix>', 'only names that start with it')
    .option('--first <n>', 'page size', wholeNumber('--first', 0, 1000), 50)
    .option('--after <cursor>', 'the page after this cursor (endCursor of the previous page)')
    .option('-a, --all', 'every matching image, page after page')
    .addHelpText(
      'after',
      '\nWith --json: { images, totalCount, pageInfo } (without pageInfo for --all).\n' +
        examples('tessera ls', 'tessera ls --prefix cats/ --all', 'tessera ls --json --first 100 --after <endCursor>'),
    )
    .action(ctx.action((opts: LsOptions) => list(ctx, opts)));
}

async function list(ctx: CommandContext, opts: LsOptions): Promise<void> {
  const c = ctx.client();
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
  if (ctx.globals().json) return printJson(pageInfo ? { images, totalCount, pageInfo } : { images, totalCount });
  if (images.length > 0) {
    out(
      formatTable(
        ['NAME', 'SIZE', 'TYPE', 'CREATED'],
        images.map((i) => [i.name, formatBytes(i.size), i.contentType, i.createdAt]),
        [1],
      ),
    );
  }
  if (pageInfo?.hasNextPage) err(`${images.length} of ${totalCount} shown; more with --after ${pageInfo.endCursor} (or --all).`);
  else if (images.length === 0) err('no images');
}
