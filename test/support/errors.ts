// What a synchronous call refused with: the code of the TesseraError it threw (anything else
// thrown fails the test), or undefined when it accepted.
import { expect } from 'vitest';
import { TesseraError } from '../../src/errors.ts';

export function codeOfThrown(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(TesseraError);
    return (err as TesseraError).code;
  }
}
