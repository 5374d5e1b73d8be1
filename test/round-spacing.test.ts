// The spacing of the background rounds a burst of deletes feeds (src/shared/round-spacing.ts): the
// first round after a quiet spell starts at once; during a burst a round waits until the calls
// pause, a round's worth has arrived, or the longest delay has passed, and never comes sooner
// than the spacing after the last one. A clock of the test's own: no timing of real time.
import { expect, it } from 'vitest';
import { roundSpacer } from '../src/shared/round-spacing.ts';

const spacing = { spacingMs: 25, quietMs: 10, maxDelayMs: 500, maxBatch: 4 };

it('lets the first round after a quiet spell start at once, and the next no sooner than the spacing', () => {
  let now = 1000;
  const spacer = roundSpacer(spacing, () => now);
  spacer.arrived();
  expect(spacer.wait()).toBe(0);
  spacer.started();
  expect(spacer.wait()).toBe(25); // nothing new: only the spacing
  now += 10;
  expect(spacer.wait()).toBe(15);
  now += 15;
  expect(spacer.wait()).toBe(0);
  now += 1000; // a quiet spell: the next call's round starts at once
  spacer.arrived();
  expect(spacer.wait()).toBe(0);
});

it('holds a round back while calls keep arriving, until they pause', () => {
  let now = 1000;
  const spacer = roundSpacer(spacing, () => now);
  spacer.arrived();
  spacer.started();
  for (let i = 0; i < 3; i++) {
    now += 8;
    spacer.arrived();
  }
  expect(now).toBe(1024);
  expect(spacer.wait()).toBe(10); // the burst goes on: the quiet time after the last call
  now += 9;
  expect(spacer.wait()).toBe(1);
  now += 1; // paused for quietMs
  expect(spacer.wait()).toBe(0);
});

it('starts the round once a round’s worth of calls waits, still spaced', () => {
  let now = 1000;
  const spacer = roundSpacer(spacing, () => now);
  spacer.started();
  for (let i = 0; i < 4; i++) {
    now += 1;
    spacer.arrived();
  }
  expect(spacer.wait()).toBe(21); // maxBatch reached: only the spacing is left
  now += 21;
  expect(spacer.wait()).toBe(0);
});

it('never holds work back longer than the longest delay, however long the burst', () => {
  let now = 1000;
  const spacer = roundSpacer({ ...spacing, maxBatch: 1_000_000 }, () => now);
  spacer.started();
  const waits: number[] = [];
  while (now < 1000 + 500) {
    now += 5; // a call every 5 ms: never a pause of quietMs
    spacer.arrived();
    waits.push(spacer.wait());
  }
  expect(waits.slice(0, 90).every((w) => w > 0)).toBe(true);
  expect(waits.every((w, i) => 1005 + 5 * i + w <= 1500)).toBe(true);
  expect(spacer.wait()).toBe(0);
});
