// Client tokens (admin only, by src/auth/rules.ts): the Token type, the tokens listing,
// createToken (the secret is in its answer, once) and revokeToken.
import { builder } from './builder.ts';
import type { ROLES } from '../auth/rules.ts';
import type { TokenRow } from '../auth/tokens.ts';

const RoleEnum = builder.enumType('Role', {
  description: 'read: queries, downloads, subscriptions; write: read plus uploads and deletes; admin: write plus datanodes and tokens.',
  values: {
    read: { description: 'Queries, downloads (GET /images) and subscriptions.' },
    write: { description: 'Everything read may do, plus uploads and deletes.' },
    admin: { description: 'Everything write may do, plus datanode administration and tokens.' },
  } satisfies Record<(typeof ROLES)[number], { description: string }>,
});

const TokenRef = builder.objectRef<TokenRow>('Token').implement({
  description: 'A client token. Its secret is never shown again after createToken.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The token id, for revokeToken (not the secret).' }),
    name: t.exposeString('name', { description: 'The name given at createToken, to tell tokens apart (e.g. "ci").' }),
    role: t.field({ type: RoleEnum, description: 'What the token may do.', resolve: (r) => r.role }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the token was created.' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true, description: 'When it stops working; null: never.' }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true, description: 'When it was revoked; null while it is not.' }),
    active: t.boolean({ description: 'Neither revoked nor expired.', resolve: (r, _a, ctx) => ctx.app.auth.tokens.isActive(r) }),
  }),
});

const CreatedTokenRef = builder.objectRef<{ token: TokenRow; secret: string }>('CreatedToken').implement({
  description: 'A token just created, with its secret (shown only here).',
  fields: (t) => ({
    token: t.field({ type: TokenRef, description: 'The new token.', resolve: (c) => c.token }),
    secret: t.string({ description: 'Send it as `Authorization: Bearer <secret>`. Shown only in this answer.', resolve: (c) => c.secret }),
  }),
});

builder.queryField('tokens', (t) =>
  t.field({
    description: 'Every client token, revoked and expired ones included (admin).',
    type: [TokenRef],
    resolve: (_root, _args, ctx) => ctx.app.auth.tokens.list(),
  }),
);

builder.mutationFields((t) => ({
  createToken: t.field({
    description: 'A new client token (admin). expiresIn: seconds until it stops working (default: never).',
    type: CreatedTokenRef,
    args: {
      name: t.arg.string({ required: true, description: 'A name to tell the token apart (e.g. "ci").' }),
      role: t.arg({ type: RoleEnum, required: true, description: 'What the token may do.' }),
      expiresIn: t.arg.int({ description: 'Seconds until the token stops working; absent: never.' }),
    },
    resolve: (_root, { name, role, expiresIn }, ctx) => ctx.app.auth.tokens.create(name, role, expiresIn),
  }),
  revokeToken: t.boolean({
    description: 'Revoke a token at once, ending its live subscriptions (admin); false when it was unknown or already revoked.',
    args: { id: t.arg.id({ required: true, description: 'The token to revoke (Token.id).' }) },
    resolve: (_root, { id }, ctx) => ctx.app.auth.revoke(String(id)),
  }),
}));
