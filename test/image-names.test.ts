// Unit tests of the contract's name rules (assertImageName) and of prefixUpperBound, the upper
// end of the index range that makes a prefix filter: exact in UTF-8 byte order.
import { describe, expect, it } from 'vitest';
import { assertImageName, MAX_NAME_LENGTH, prefixUpperBound } from '../src/names.ts';
import { codeOfThrown } from './support/errors.ts';

describe('assertImageName', () => {
  it.each([
    ['a'],
    ['a.png'],
    ['fotos/férias 🌴.png'],
    ['...'],
    ['.hidden'],
    ['a/../b'],
    ['../etc/passwd'], // names are metadata, never paths
    ['C:\\temp\\x'],
    ['x'.repeat(MAX_NAME_LENGTH)],
    ['🌴'.repeat(MAX_NAME_LENGTH)], // 255 characters, 1020 bytes
    ['\ufffd'],
    ['\u00a0non-breaking'],
    ['zero\u200bwidth'],
  ])('accepts %j', (name) => {
    expect(codeOfThrown(() => assertImageName(name))).toBeUndefined();
  });

  it.each([
    ['empty', ''],
    ['dot', '.'],
    ['dot dot', '..'],
    ['256 characters', 'x'.repeat(MAX_NAME_LENGTH + 1)],
    ['256 astral characters', '🌴'.repeat(MAX_NAME_LENGTH + 1)],
    ['NUL', 'a\0'],
    ['newline', 'a\nb'],
    ['carriage return', 'a\rb'],
    ['escape', '\u001b[31m'],
    ['DEL', '\u007f'],
    ['C1 control', '\u0085'],
    ['C1 control 9f', 'a\u009fb'],
    ['lone high surrogate', '\ud800'],
    ['lone low surrogate', 'a\udfffb'],
    ['reversed surrogate pair', '\udc00\ud800'],
  ])('rejects %s with BAD_USER_INPUT', (_what, name) => {
    expect(codeOfThrown(() => assertImageName(name))).toBe('BAD_USER_INPUT');
  });

  it('counts characters (code points), not UTF-16 units or bytes', () => {
    expect(MAX_NAME_LENGTH).toBe(255);
    expect(codeOfThrown(() => assertImageName('é'.repeat(255)))).toBeUndefined(); // 510 bytes
    expect(codeOfThrown(() => assertImageName('a' + '🌴'.repeat(254)))).toBeUndefined(); // 509 UTF-16 units
    expect(codeOfThrown(() => assertImageName('a' + '🌴'.repeat(255)))).toBe('BAD_USER_INPUT');
  });
});

describe('prefixUpperBound', () => {
  it('increments the last character', () => {
    expect(prefixUpperBound('abc')).toBe('abd');
    expect(prefixUpperBound('fotos/')).toBe('fotos0');
    expect(prefixUpperBound('é')).toBe('ê');
    expect(prefixUpperBound('🌴')).toBe('🌵');
  });

  it('has no bound for an empty prefix or one made only of U+10FFFF', () => {
    expect(prefixUpperBound('')).toBeUndefined();
    expect(prefixUpperBound('\u{10ffff}')).toBeUndefined();
    expect(prefixUpperBound('\u{10ffff}\u{10ffff}')).toBeUndefined();
  });

  it('drops trailing U+10FFFF and increments what is before', () => {
    expect(prefixUpperBound('a\u{10ffff}')).toBe('b');
    expect(prefixUpperBound('ab\u{10ffff}\u{10ffff}')).toBe('ac');
  });

  it('skips the surrogate block (not characters)', () => {
    expect(prefixUpperBound('\ud7ff')).toBe('\ue000');
    expect(prefixUpperBound('\uffff')).toBe('\u{10000}');
  });

  it('bounds exactly the names that start with the prefix, in UTF-8 byte order', () => {
    const utf8 = (s: string) => Buffer.from(s, 'utf8');
    const cmp = (a: string, b: string) => Buffer.compare(utf8(a), utf8(b));
    const alphabet = [
      'a',
      'b',
      'z',
      'A',
      '/',
      '0',
      '\u007e',
      'é',
      'ê',
      '\ud7ff',
      '\ue000',
      '\uffff',
      '\ufffd',
      '🌴',
      '🌵',
      '\u{10ffff}',
      '\u{10000}',
    ];
    const names: string[] = [''];
    for (const x of alphabet) for (const y of alphabet) names.push(x, x + y);
    for (const x of alphabet.slice(0, 8)) for (const y of alphabet) for (const z of alphabet.slice(-6)) names.push(x + y + z);
    const prefixes = ['a', 'é', '\ud7ff', '\uffff', '🌴', 'a\u{10ffff}', 'z/', '\ufffd', '\u{10ffff}'];
    for (const prefix of prefixes) {
      const upper = prefixUpperBound(prefix);
      for (const name of names) {
        const inRange = cmp(name, prefix) >= 0 && (upper === undefined || cmp(name, upper) < 0);
        expect(inRange, `${JSON.stringify(name)} vs prefix ${JSON.stringify(prefix)}`).toBe(name.startsWith(prefix));
      }
    }
  });
});
