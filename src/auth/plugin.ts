// Enforces rules.ts on every GraphQL operation, over HTTP, SSE and graphql-ws alike: the caller
// is authenticated before its request is even parsed (401, and rate-limited: 429), and every root
// field of the operation, fragments included, is checked against its rule before it runs (403).
// Live subscriptions are counted per token and end when the token is revoked.
import { getOperationAST, Kind, type DocumentNode, type GraphQLError, type SelectionSetNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from '../context.ts';
import type { TesseraError } from '../errors.ts';
import { asGraphQLError, toGraphQLError } from '../http/graphql-errors.ts';
import { forbidden, unauthenticated, type Auth } from './service.ts';
import { allows, type Principal } from './rules.ts';

type RootType = 'Query' | 'Mutation' | 'Subscription';
const ROOT: Record<string, RootType> = { query: 'Query', mutation: 'Mutation', subscription: 'Subscription' };

/** The root type and the root field names an operation selects, through fragments and inline fragments. */
export function rootFieldsOf(document: DocumentNode, operationName?: string | null): { type: RootType; fields: Set<string> } | undefined {
  const operation = getOperationAST(document, operationName ?? undefined);
  if (!operation) return undefined;
  const fragments = new Map(document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])));
  const fields = new Set<string>();
  const seen = new Set<string>();
  const walk = (set: SelectionSetNode) => {
    for (const s of set.selections) {
      if (s.kind === Kind.FIELD) fields.add(s.name.value);
      else if (s.kind === Kind.INLINE_FRAGMENT) walk(s.selectionSet);
      else if (!seen.has(s.name.value)) {
        seen.add(s.name.value);
        const fragment = fragments.get(s.name.value);
        if (fragment) walk(fragment.selectionSet);
      }
    }
  };
  walk(operation.selectionSet);
  return { type: ROOT[operation.operation], fields };
}

/** Why `principal` may not run this operation, or undefined when it may. */
export async function refusal(
  auth: Auth,
  principal: Principal | undefined,
  document: DocumentNode,
  operationName?: string | null,
  justAuthenticated = false,
): Promise<TesseraError | undefined> {
  if (!principal) return unauthenticated('This call needs a token: send `Authorization: Bearer <token>`.');
  // A revoked token stops working at once, on sockets opened before the revocation too.
  if (!justAuthenticated && !(await auth.stillValid(principal))) return unauthenticated('The token is unknown, revoked or expired.');
  const root = rootFieldsOf(document, operationName);
  if (!root) return undefined; // graphql-js reports the missing operation itself
  const denied = [...root.fields].filter((f) => !allows(principal, root.type, f));
  if (denied.length === 0) return undefined;
  const who =
    principal.kind === 'cluster' ? 'The cluster secret' : principal.kind === 'anonymous' ? 'Anonymous access' : `A ${principal.role} token`;
  return forbidden(`${who} may not use ${denied.map((f) => `${root.type}.${f}`).join(', ')}.`);
}

/** Ends `source` when `stop` is called, and calls `release` once however it ends. */
function stoppable<T>(source: AsyncIterable<T>, release: () => void): { iterator: AsyncIterableIterator<T>; stop: () => void } {
  const it = source[Symbol.asyncIterator]();
  let ended = false;
  let wake!: (r: IteratorResult<T>) => void;
  const stopped = new Promise<IteratorResult<T>>((r) => (wake = r));
  const finish = () => {
    if (ended) return;
    ended = true;
    release();
  };
  const done = { done: true, value: undefined } as IteratorResult<T>;
  const iterator: AsyncIterableIterator<T> = {
    next: async () => {
      if (ended) return done;
      const r = await Promise.race([it.next(), stopped]);
      if (r.done) finish();
      return r;
    },
    return: async () => {
      finish();
      await it.return?.();
      return done;
    },
    throw: async (e) => {
      finish();
      if (it.throw) return it.throw(e);
      throw e;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  const stop = () => {
    finish();
    wake(done);
    void it.return?.();
  };
  return { iterator, stop };
}

const isAsyncIterable = (v: unknown): v is AsyncIterable<unknown> => v != null && typeof v === 'object' && Symbol.asyncIterator in v;

/** `principals` carries who sent an HTTP request from onParams to the context factory. */
export function authPlugin(auth: Auth, principals: WeakMap<Request, Principal>): Plugin<Context> {
  // Principals authenticated by this very HTTP request: no second lookup of their token. Those
  // of graphql-ws connections are looked up again at every operation (revocation at once).
  const fresh = new WeakSet<Principal>();
  return {
    async onParams({ request }) {
      try {
        const principal = await auth.authenticate(request.headers.get('authorization') ?? undefined);
        await auth.quotas.admit(principal);
        principals.set(request, principal);
        fresh.add(principal);
      } catch (err) {
        throw asGraphQLError(err);
      }
    },
    async onExecute({ args, setResultAndStopExecution }) {
      const ctx = args.contextValue as Context;
      const error = await refusal(
        auth,
        ctx.principal,
        args.document,
        args.operationName,
        ctx.principal !== undefined && fresh.has(ctx.principal),
      );
      if (error) setResultAndStopExecution({ errors: [toGraphQLError(error)] });
    },
    async onSubscribe({ args, setResultAndStopExecution }) {
      const ctx = args.contextValue as Context;
      const principal = ctx.principal;
      const error = await refusal(auth, principal, args.document, args.operationName, principal !== undefined && fresh.has(principal));
      if (error || !principal) {
        setResultAndStopExecution({ errors: [toGraphQLError(error!)] });
        return;
      }
      let stop: () => void = () => {};
      let release: () => void;
      try {
        release = auth.quotas.startSubscription(principal, () => stop());
      } catch (err) {
        setResultAndStopExecution({ errors: [asGraphQLError(err) as GraphQLError] });
        return;
      }
      return {
        onSubscribeResult({ result, setResult }) {
          if (!isAsyncIterable(result)) return release();
          const wrapped = stoppable(result, release);
          stop = wrapped.stop;
          setResult(wrapped.iterator as never);
        },
      };
    },
  };
}
