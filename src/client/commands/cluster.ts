// `tessera cluster`: cluster-wide figures.
import type { Command } from 'commander';
import { formatBytes } from '../cli-format.ts';
import { examples, out, printJson, type CommandContext } from './command-context.ts';

export function addClusterCommand(program: Command, ctx: CommandContext): void {
  program
    .command('cluster')
    .description('Cluster-wide figures: datanodes, images, bytes stored, under-replicated fragments.')
    .addHelpText('after', examples('tessera cluster', 'tessera cluster --json'))
    .action(
      ctx.action(async () => {
        const s = await ctx.client().cluster();
        if (ctx.globals().json) return printJson(s);
        out(`datanodes                  ${s.liveDatanodeCount} live of ${s.datanodeCount}`);
        out(`replication factor         ${s.replicationFactor}`);
        out(`fragment size              ${formatBytes(s.fragmentSize)}`);
        out(`images                     ${s.imageCount} (${formatBytes(s.storedBytes)})`);
        out(`under-replicated fragments ${s.underReplicatedFragments}`);
      }),
    );
}
