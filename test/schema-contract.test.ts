// The served schema against its committed snapshot (schema/schema.graphql, printed by
// `npm run schema`) and against the contract (contract/schema.graphql): no breaking change.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildSchema, findBreakingChanges } from 'graphql';
import { printedSchema, SCHEMA_FILE } from '../src/print-schema.ts';

const read = (relative: string) => readFileSync(fileURLToPath(new URL(relative, import.meta.url)), 'utf8');
const CONTRACT = read('../contract/schema.graphql');

describe('schema', () => {
  it('schema/schema.graphql is the printed served schema', () => {
    const committed = readFileSync(SCHEMA_FILE, 'utf8');
    expect(committed, 'schema/schema.graphql is stale: run `npm run schema` and commit it').toBe(printedSchema());
  });

  it('the committed schema does not break the contract', () => {
    const changes = findBreakingChanges(buildSchema(CONTRACT), buildSchema(readFileSync(SCHEMA_FILE, 'utf8')));
    expect(changes.map((c) => `${c.type}: ${c.description}`)).toEqual([]);
  });

  it('the served schema does not break the contract', () => {
    const changes = findBreakingChanges(buildSchema(CONTRACT), buildSchema(printedSchema()));
    expect(changes.map((c) => `${c.type}: ${c.description}`)).toEqual([]);
  });

  it('would notice a break: a contract field the schema lacks', () => {
    const served = buildSchema(printedSchema());
    const broken = buildSchema(printedSchema().replace(/^(\s*)fragmentData\(/m, '$1fragmentBytes('));
    expect(findBreakingChanges(buildSchema(CONTRACT), served)).toEqual([]);
    expect(findBreakingChanges(buildSchema(CONTRACT), broken).map((c) => c.description)).toEqual(['Query.fragmentData was removed.']);
  });
});
