// The bounds of the GraphQL surface: GraphQL Armor's limits on tokens, depth, aliases,
// directives and cost, a cost of our own for what Armor cannot weigh (fragmentData's bytes and the
// SQLite rows of `images(first:)`), no field suggestions, and error messages cut to a bounded length.
// Every refusal carries extensions.code QUERY_TOO_COMPLEX and extensions.limit (which one).
import { blockFieldSuggestionsPlugin } from '@escape.tech/graphql-armor-block-field-suggestions';
import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesPlugin } from '@escape.tech/graphql-armor-max-directives';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import {
  GraphQLError,
  Kind,
  getOperationAST,
  valueFromASTUntyped,
  type DocumentNode,
  type FragmentDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { DEFAULT_PAGE, MAX_PAGE } from '../image-service.ts';

export const GRAPHQL_LIMITS = {
  /** Armor's defaults, except depth: a listing down to a fragment's replicas is 7 deep. */
  tokens: 1000,
  depth: 8,
  aliases: 15,
  directives: 20,
  /** Armor's cost multiplies by `first`: one full page of images with every field is ~45,000. */
  cost: 100_000,
  /** fragmentData fields in one operation (each holds a fragment, then its base64). */
  fragmentData: 4,
  /** SQLite rows one operation may read: images(first:) counts `first`, fragments of each listed image an estimate. */
  rows: 5000,
  /** Longest error message sent back; the rest is cut, so no error echoes unbounded input. */
  messageChars: 500,
} as const;

/** Fragments an image in a listing is assumed to have when its `fragments` are asked for. */
const FRAGMENTS_PER_IMAGE = 16;
/** Rows a totalCount is worth: a count walks the index. */
const TOTAL_COUNT_ROWS = 1000;
/** The cluster figures that count over a whole table, each worth a totalCount (the others are in memory). */
const CLUSTER_COUNTS = new Set(['imageCount', 'storedBytes', 'underReplicatedFragments', 'pendingReplicaDeletions']);

const refusal = (message: string, limit: string) =>
  new GraphQLError(message, { extensions: { code: 'QUERY_TOO_COMPLEX', limit, http: { status: 400 } } });

/** Armor's callbacks: its error becomes ours (with a code), reported to validation or thrown from the parser. */
const armored = (limit: string) => ({
  propagateOnRejection: false,
  onReject: [
    (ctx: ValidationContext | null, err: GraphQLError) => {
      const error = refusal(err.message.replace(/^Syntax Error: /, ''), limit);
      if (ctx) ctx.reportError(error);
      else throw error; // the token limit, while parsing
    },
  ],
});

/** What one operation costs in fragmentData fields and SQLite rows, with its variables' values. */
export function expensiveCost(
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | null | undefined,
) {
  const operation = getOperationAST(document, operationName);
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  let fragmentData = 0;
  let rows = 0;
  const intArg = (
    field: { arguments?: readonly { name: { value: string }; value: import('graphql').ValueNode }[] },
    name: string,
  ): number | undefined => {
    const arg = field.arguments?.find((a) => a.name.value === name);
    if (!arg) return undefined;
    const value = valueFromASTUntyped(arg.value, variables ?? undefined);
    return typeof value === 'number' ? value : undefined;
  };
  // `multiplier`: how many times the selection runs (images listed around it); `edges`: the page
  // size of the connection being walked; `seen` stops fragment cycles; `parent`: the field whose
  // selection this is.
  const walk = (set: SelectionSetNode | undefined, multiplier: number, seen: Set<string>, edges = 1, parent = '') => {
    for (const s of set?.selections ?? []) {
      if (s.kind === Kind.FRAGMENT_SPREAD) {
        const f = fragments.get(s.name.value);
        if (f && !seen.has(f.name.value)) walk(f.selectionSet, multiplier, new Set([...seen, f.name.value]), edges, parent);
      } else if (s.kind === Kind.INLINE_FRAGMENT) walk(s.selectionSet, multiplier, seen, edges, parent);
      else {
        const name = s.name.value;
        if (name === 'fragmentData') fragmentData += multiplier;
        if (name === 'totalCount' || (parent === 'cluster' && CLUSTER_COUNTS.has(name))) rows += TOTAL_COUNT_ROWS * multiplier;
        if (name === 'fragments') {
          rows += FRAGMENTS_PER_IMAGE * multiplier;
          walk(s.selectionSet, multiplier * FRAGMENTS_PER_IMAGE, seen);
        } else if (name === 'images') {
          // Past MAX_PAGE the resolver refuses it (BAD_USER_INPUT, as the contract says) without reading.
          const first = Math.min(Math.max(intArg(s, 'first') ?? DEFAULT_PAGE, 0), MAX_PAGE);
          rows += first * multiplier;
          walk(s.selectionSet, multiplier, seen, Math.max(first, 1));
        } else if (name === 'edges') walk(s.selectionSet, multiplier * edges, seen);
        else walk(s.selectionSet, multiplier, seen, 1, name);
      }
    }
  };
  if (operation) walk(operation.selectionSet, 1, new Set());
  return { fragmentData, rows };
}

/** Refuses, before anything runs, an operation whose fragmentData or rows are past the limits. */
const expensiveFields: Plugin = {
  onExecute({ args, setResultAndStopExecution }) {
    const { fragmentData, rows } = expensiveCost(args.document, args.operationName, args.variableValues);
    const error =
      fragmentData > GRAPHQL_LIMITS.fragmentData
        ? refusal(
            `An operation may ask for fragmentData up to ${GRAPHQL_LIMITS.fragmentData} times; this one asks ${fragmentData} times.`,
            'fragmentData',
          )
        : rows > GRAPHQL_LIMITS.rows
          ? refusal(
              `An operation may read up to ${GRAPHQL_LIMITS.rows} index rows (images(first:) and its fragments; a count over the index is worth ${TOTAL_COUNT_ROWS}); this one may read ${rows}.`,
              'rows',
            )
          : undefined;
    if (error) setResultAndStopExecution({ errors: [error] });
  },
};

const cut = (message: string) =>
  message.length > GRAPHQL_LIMITS.messageChars ? `${message.slice(0, GRAPHQL_LIMITS.messageChars)}… (cut)` : message;

/** Every error message that leaves the coordinator is cut to messageChars (a 3 MB cursor is not sent back). */
const boundedErrors: Plugin = {
  onResultProcess({ result }) {
    for (const r of Array.isArray(result) ? result : [result]) {
      for (const e of (r as { errors?: { message: string }[] } | undefined)?.errors ?? []) {
        if (typeof e.message === 'string' && e.message.length > GRAPHQL_LIMITS.messageChars) e.message = cut(e.message);
      }
    }
  },
};

/**
 * The plugins, in order. Field suggestions are off for every caller for now; once callers carry a
 * token, pass the plugin only for callers without one (see blockFieldSuggestionsPlugin below).
 */
export function graphqlLimits(): Plugin[] {
  return [
    maxTokensPlugin({ n: GRAPHQL_LIMITS.tokens, ...armored('tokens') }),
    maxDepthPlugin({ n: GRAPHQL_LIMITS.depth, ...armored('depth') }),
    maxAliasesPlugin({ n: GRAPHQL_LIMITS.aliases, ...armored('aliases') }),
    maxDirectivesPlugin({ n: GRAPHQL_LIMITS.directives, ...armored('directives') }),
    costLimitPlugin({ maxCost: GRAPHQL_LIMITS.cost, ...armored('cost') }),
    blockFieldSuggestionsPlugin({ mask: '' }),
    expensiveFields,
    boundedErrors,
  ] as Plugin[];
}

/** For graphql-ws, which does not pass results through Yoga's result processing. */
export const boundedMessage = cut;

export const WS_LIMITS = {
  /** Subscriptions (and operations in flight) one graphql-ws connection may hold. */
  operationsPerConnection: 100,
  /** Subscribes refused for the cap above after which the connection is closed (4429): a flood then costs little. */
  refusedSubscribesPerConnection: 10,
  /** A client that lets this much of what we send pile up unread is dropped. */
  maxBufferedBytes: 16 * 1024 * 1024,
} as const;
