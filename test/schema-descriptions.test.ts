// The schema documents itself: the schema, every type (built-in scalars aside), field, argument,
// input field and enum value has a description, as GitHub's public GraphQL API does.
import { describe, expect, it } from 'vitest';
import {
  buildSchema,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isIntrospectionType,
  isObjectType,
  isSpecifiedScalarType,
  type GraphQLSchema,
} from 'graphql';
import { schema } from '../src/schema/index.ts';

const documented = (description: string | null | undefined) => typeof description === 'string' && description.trim().length > 0;

/** Schema coordinates of every element without a description. */
export function undocumented(s: GraphQLSchema): string[] {
  const missing: string[] = [];
  if (!documented(s.description)) missing.push('schema');
  for (const type of Object.values(s.getTypeMap())) {
    if (isIntrospectionType(type) || isSpecifiedScalarType(type)) continue;
    if (!documented(type.description)) missing.push(type.name);
    if (isObjectType(type) || isInterfaceType(type) || isInputObjectType(type)) {
      for (const field of Object.values(type.getFields())) {
        if (!documented(field.description)) missing.push(`${type.name}.${field.name}`);
        for (const arg of 'args' in field ? field.args : []) {
          if (!documented(arg.description)) missing.push(`${type.name}.${field.name}(${arg.name}:)`);
        }
      }
    }
    if (isEnumType(type)) {
      for (const value of type.getValues()) if (!documented(value.description)) missing.push(`${type.name}.${value.name}`);
    }
  }
  return missing;
}

describe('schema descriptions', () => {
  it('every type, field, argument, input field and enum value of the served schema has one, and the schema too', () => {
    expect(undocumented(schema)).toEqual([]);
  });

  it('would notice a missing one of each kind', () => {
    const sdl = `
      "A schema." schema { query: Q }
      "Root." type Q { "ok" a(x: Int): E  b("ok" y: I): Int }
      enum E { "ok" ONE TWO }
      input I { "ok" p: Int q: Int }
      scalar S
      "ok" type T implements N { n: Int }
      interface N { "ok" n: Int }`;
    expect(undocumented(buildSchema(sdl)).sort()).toEqual(['E', 'E.TWO', 'I', 'I.q', 'N', 'Q.a(x:)', 'Q.b', 'S', 'T.n'].sort());
  });
});
