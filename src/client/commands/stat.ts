// `tessera stat <name>`: one image's fields and every fragment with its replicas.
import type { Command } from 'commander';
import { formatBytes, formatTable } from '../cli-format.ts';
import { examples, out, printJson, type CommandContext } from './command-context.ts';

export function addStatCommand(program: Command, ctx: CommandContext): void {
  program
    .command('stat')
    .description('Show one image: size, type, sha256, and every fragment with its replicas.')
    .argument('<name>', 'image name')
    .addHelpText('after', examples('tessera stat cat.png', 'tessera stat cat.png --json'))
    .action(
      ctx.action(async (name: string) => {
        const image = await ctx.client().stat(name);
        if (ctx.globals().json) return printJson(image);
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
            image.fragments.map((f) => [
              String(f.index),
              formatBytes(f.size),
              `${f.sha256.slice(0, 16)}…`,
              f.replicas.map((r) => `${r.id} (${r.status})`).join(', ') || 'none',
            ]),
            [0, 1],
          ),
        );
      }),
    );
}
