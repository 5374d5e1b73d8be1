// `tessera token create|ls|revoke`: client tokens administered over GraphQL (an admin token
// is needed: on the coordinator's machine the CLI finds <data-dir>/admin.token by itself).
import { InvalidArgumentError, type Command } from 'commander';
import { formatTable } from '../cli-format.ts';
import { out, type CommandContext } from './command-context.ts';
import { oneOf } from '../../shared/flag-values.ts';
import { isWholeNumberIn } from '../../shared/flag-values.ts';

interface TokenView {
  id: string;
  name: string;
  role: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  active: boolean;
}

const TOKEN = 'id name role createdAt expiresAt revokedAt active';
const CREATE = `mutation CreateToken($name: String!, $role: Role!, $expiresIn: Int) { createToken(name: $name, role: $role, expiresIn: $expiresIn) { secret token { ${TOKEN} } } }`;
const LIST = `query Tokens { tokens { ${TOKEN} } }`;
const REVOKE = `mutation RevokeToken($id: ID!) { revokeToken(id: $id) }`;

const UNIT_SEC: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "3600", "90s", "15m", "12h" or "30d" as seconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(value.trim());
  const sec = m ? Number(m[1]) * UNIT_SEC[m[2] || 's'] : NaN;
  if (!isWholeNumberIn(sec, 1)) throw new InvalidArgumentError('--expires-in must be a duration such as 3600, 90s, 15m, 12h or 30d.');
  return sec;
}

export function addTokenCommands(program: Command, { client, globals, action }: CommandContext): void {
  const json = () => globals().json === true;
  const token = program.command('token').description('Create, list and revoke client tokens (needs an admin token).');

  token
    .command('create')
    .description('Create a token; its secret is printed once.')
    .requiredOption('--name <name>', 'what the token is for, e.g. ci')
    .option('--role <role>', 'read, write or admin', oneOf('--role', ['read', 'write', 'admin']), 'read')
    .option('--expires-in <duration>', 'lifetime: seconds, or 15m, 12h, 30d (default: never)', parseDuration)
    .action(
      action(async (opts: { name: string; role: string; expiresIn?: number }) => {
        const { createToken } = await client().graphql<{ createToken: { secret: string; token: TokenView } }>(CREATE, {
          name: opts.name,
          role: opts.role,
          expiresIn: opts.expiresIn ?? null,
        });
        if (json()) return out(JSON.stringify(createToken, null, 2));
        out(createToken.secret);
        process.stderr.write(
          `token ${createToken.token.id} (${createToken.token.role}, ${createToken.token.expiresAt ? `expires ${createToken.token.expiresAt}` : 'never expires'}); the secret above is not shown again\n`,
        );
      }),
    );

  token
    .command('ls')
    .description('List tokens (revoked and expired ones too).')
    .action(
      action(async () => {
        const { tokens } = await client().graphql<{ tokens: TokenView[] }>(LIST);
        if (json()) return out(JSON.stringify(tokens, null, 2));
        const state = (t: TokenView) => (t.revokedAt ? 'revoked' : t.active ? 'active' : 'expired');
        out(
          formatTable(
            ['ID', 'NAME', 'ROLE', 'STATE', 'CREATED', 'EXPIRES'],
            tokens.map((t) => [t.id, t.name, t.role, state(t), t.createdAt, t.expiresAt ?? 'never']),
          ),
        );
      }),
    );

  token
    .command('revoke')
    .description('Revoke a token at once (by id, as listed by token ls).')
    .argument('<id>', 'the token id')
    .action(
      action(async (id: string) => {
        const { revokeToken } = await client().graphql<{ revokeToken: boolean }>(REVOKE, { id });
        if (json()) return out(JSON.stringify({ id, revoked: revokeToken }));
        out(revokeToken ? `revoked ${id}` : `${id}: no such active token`);
      }),
    );
}
