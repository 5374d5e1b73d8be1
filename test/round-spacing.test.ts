// The spacing of the background rounds a burst of deletes feeds (src/shared/round-spacing.ts): the
// first round after a quiet spell starts at once, the next not sooner than the spacing after the
// last one started. A clock of the test's own: no timing of real time.
import { expect, it } from 'vitest';
import { roundSpacer } from '../src/shared/round-spacing.ts';

it('lets the first round start at once and spaces the next ones from the last start', () => {
  let now = 1000;
  const spacer = roundSpacer(25, () => now);
  expect(spacer.wait()).toBe(0);
  spacer.started();
  expect(spacer.wait()).toBe(25);
  now += 10;
  expect(spacer.wait()).toBe(15);
  now += 15;
  expect(spacer.wait()).toBe(0);
  spacer.started();
  now += 24;
  expect(spacer.wait()).toBe(1);
  now += 1000; // a quiet spell: the next round starts at once
  expect(spacer.wait()).toBe(0);
});
