// `tessera nodes`: the datanodes with their status and last health sample.
import type { Command } from 'commander';
import { formatBytes, formatPercent, formatTable } from '../cli-format.ts';
import { examples, out, printJson, type CommandContext } from './command-context.ts';

export function addNodesCommand(program: Command, ctx: CommandContext): void {
  program
    .command('nodes')
    .description('List the datanodes with their status and last health sample.')
    .addHelpText('after', examples('tessera nodes', 'tessera nodes --json'))
    .action(
      ctx.action(async () => {
        const nodes = await ctx.client().nodes();
        if (ctx.globals().json) return printJson(nodes);
        out(
          formatTable(
            ['ID', 'URL', 'STATUS', 'CPU', 'MEMORY', 'DISK', 'FRAGMENTS', 'STORED'],
            nodes.map((n) => [
              n.id,
              n.url,
              n.status,
              formatPercent(n.cpuPercent),
              formatPercent(n.memoryPercent),
              formatPercent(n.diskPercent),
              String(n.fragmentCount),
              formatBytes(n.storedBytes),
            ]),
            [3, 4, 5, 6, 7],
          ),
        );
      }),
    );
}
