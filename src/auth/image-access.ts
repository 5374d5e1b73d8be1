// Who may GET /images/{name}: a caller whose token (or anonymous access) has the role in
// HTTP_RULES, or anyone holding a valid, unexpired signed URL for that name whose signing
// token is still active. Who may DELETE or PUT it, or PUT a fragment of an upload: a caller whose
// token has that rule's role (a signed URL grants reading only). Every one counts against the
// token's request rate.
import type { IncomingMessage } from 'node:http';
import { TesseraError } from '../errors.ts';
import { forbidden, type Auth } from './service.ts';
import { HTTP_RULES, roleAtLeast, type Principal } from './rules.ts';

export async function authorizeImageRequest(auth: Auth, req: IncomingMessage, name: string): Promise<void> {
  const queryAt = (req.url ?? '').indexOf('?');
  const query = new URLSearchParams(queryAt < 0 ? '' : (req.url ?? '').slice(queryAt + 1));
  const signed = auth.signer.verify(name, query);
  const needed = HTTP_RULES['GET /images/{name}'];
  let principal: Principal;
  if (signed) {
    if (signed.tokenId === 'anonymous') {
      if (auth.anonymous === 'none') throw new TesseraError('SIGNED_URL_INVALID');
      principal = { kind: 'anonymous', id: 'anonymous', name: 'anonymous', role: auth.anonymous };
    } else {
      const row = await auth.tokens.get(signed.tokenId);
      if (!row || !auth.tokens.isActive(row) || !roleAtLeast(row.role, needed)) throw new TesseraError('SIGNED_URL_INVALID');
      principal = { kind: 'token', id: row.id, name: row.name, role: row.role };
    }
  } else principal = await byToken(auth, req, 'GET /images/{name}');
  await auth.quotas.admit(principal);
}

/** A change over HTTP (DELETE or PUT /images/{name}, PUT /uploads/{id}/fragments/{index}): the caller's own token (or anonymous access) with the rule's role. */
export async function authorizeChange(
  auth: Auth,
  req: IncomingMessage,
  route: Exclude<keyof typeof HTTP_RULES, 'GET /images/{name}'>,
): Promise<void> {
  await auth.quotas.admit(await byToken(auth, req, route));
}

/** The caller by its Authorization header, refused unless it has the role `route` needs (never the cluster secret). */
async function byToken(auth: Auth, req: IncomingMessage, route: keyof typeof HTTP_RULES): Promise<Principal> {
  const needed = HTTP_RULES[route];
  const principal = await auth.authenticate(req.headers.authorization);
  if (principal.kind === 'cluster' || !roleAtLeast(principal.role, needed)) throw forbidden(`${route} needs a ${needed} token.`);
  return principal;
}
