// What a child's reader keeps of its output (src/launcher/child-process.ts, outputTail): exactly
// the last `keep` characters, however the text arrives.
import { expect, it } from 'vitest';
import { outputTail } from '../src/launcher/child-process.ts';

it('keeps the last `keep` characters of everything added', () => {
  const tail = outputTail(10);
  let all = '';
  for (let i = 0; i < 500; i++) {
    const line = `line ${i}\n`;
    tail.add(line);
    all += line;
    expect(tail.text()).toBe(all.slice(-10));
  }
  tail.add('a long piece, longer than what is kept');
  expect(tail.text()).toBe('at is kept');
});

it('keeps short output whole, and nothing when `keep` is 0', () => {
  const tail = outputTail(100);
  tail.add('ready\n');
  tail.add('listening\n');
  expect(tail.text()).toBe('ready\nlistening\n');
  const none = outputTail(0);
  none.add('anything');
  expect(none.text()).toBe('');
});
