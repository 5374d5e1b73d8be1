// `tessera rm <name...>`: deletes images one by one; a failure does not stop the rest.
import type { Command } from 'commander';
import { asClientError, TesseraClientError } from '../errors.ts';
import { examples, EXIT, out, printError, printJson, type CommandContext } from './command-context.ts';

export function addRmCommand(program: Command, ctx: CommandContext): void {
  program
    .command('rm')
    .description('Delete images (and all their fragment replicas).')
    .argument('<name...>', 'image names')
    .option('-f, --force', 'a name that does not exist is not an error')
    .addHelpText(
      'after',
      '\nWith --json: an array of { name, deleted }.\n' +
        examples('tessera rm cat.png dog.jpg', 'tessera ls --json --prefix tmp/ | jq -r ".images[].name" | xargs tessera rm'),
    )
    .action(
      ctx.action(async (names: string[], opts: { force?: boolean }) => {
        const c = ctx.client();
        const results = [];
        for (const name of names) {
          try {
            const deleted = await c.remove(name);
            results.push({ name, deleted });
            if (!deleted && !opts.force) {
              printError(new TesseraClientError('IMAGE_NOT_FOUND', `No stored image is named "${name}".`));
              ctx.setStatus(EXIT.FAILED);
            } else if (!ctx.globals().json && deleted) out(`deleted ${name}`);
          } catch (e) {
            const ce = asClientError(e);
            results.push({ name, deleted: false, error: { code: ce.code, message: ce.message } });
            printError(ce);
            ctx.setStatus(EXIT.FAILED);
          }
        }
        if (ctx.globals().json) printJson(results);
      }),
    );
}
