// `tessera watch`: live cluster events, one line each, until Ctrl-C (or SIGTERM).
import type { Command } from 'commander';
import type { ClusterEvent } from '../types.ts';
import { err, examples, out, type CommandContext } from './command-context.ts';

export function addWatchCommand(program: Command, ctx: CommandContext): void {
  program
    .command('watch')
    .description('Print live cluster events, one line each, until Ctrl-C.')
    .addHelpText(
      'after',
      '\nOnce subscribed, "watching <url>" goes to stderr. With --json, one JSON object per line:\n{ "__typename": "ImageStored", "at", "message", "name", "size" } and the like.\n' +
        examples('tessera watch', 'tessera watch --json | jq -c "select(.__typename == \\"ImageStored\\")"'),
    )
    .action(
      ctx.action(async () => {
        const { json } = ctx.globals();
        const c = ctx.client();
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
}
