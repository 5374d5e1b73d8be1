// The one loop runner behind every periodic job: passes never overlap, a kick is answered by a
// pass that began after it, stop() ends the timer, and a closed gate runs no pass at all.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createScheduler } from '../src/shared/scheduler.ts';
import { currentFence } from '../src/shared/fence.ts';

/** A pass that stays open until released, counting how often it started. */
function heldPass() {
  const state = { started: 0, open: 0, maxOpen: 0, release: () => {} };
  const pass = () =>
    new Promise<void>((resolve) => {
      state.started += 1;
      state.open += 1;
      state.maxOpen = Math.max(state.maxOpen, state.open);
      state.release = () => {
        state.open -= 1;
        resolve();
      };
    });
  return { state, pass };
}

describe('a scheduler loop', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs the first pass at start, then one every interval after the previous ended, and none after stop()', async () => {
    let passes = 0;
    const loop = createScheduler().loop('test', async () => void (passes += 1), { everyMs: 100 });
    loop.start();
    await loop.idle();
    expect(passes).toBe(1);
    await vi.advanceTimersByTimeAsync(99);
    expect(passes).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(passes).toBe(2);
    await vi.advanceTimersByTimeAsync(300);
    expect(passes).toBe(5);
    await loop.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(passes).toBe(5);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('waits firstAfterMs before the first pass, and asks everyMs for each next delay', async () => {
    let passes = 0;
    const delays = [50, 500];
    const loop = createScheduler().loop('test', async () => void (passes += 1), {
      everyMs: () => delays[passes - 1] ?? 1000,
      firstAfterMs: 30,
    });
    loop.start();
    await vi.advanceTimersByTimeAsync(29);
    expect(passes).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(passes).toBe(1);
    await vi.advanceTimersByTimeAsync(50);
    expect(passes).toBe(2);
    await vi.advanceTimersByTimeAsync(499);
    expect(passes).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(passes).toBe(3);
    await loop.stop();
  });

  it('never overlaps passes: kicks during a pass are answered by one more pass after it', async () => {
    const { state, pass } = heldPass();
    const loop = createScheduler().loop('test', pass, { everyMs: 1_000_000 });
    const first = loop.kick();
    let secondDone = false;
    const second = loop.kick().then(() => (secondDone = true));
    const third = loop.kick();
    expect(state.started).toBe(1);
    state.release();
    await first;
    // The kicks made during the first pass wait for a pass that began after them.
    expect(state.started).toBe(2);
    expect(secondDone).toBe(false);
    state.release();
    await Promise.all([second, third]);
    expect(state.started).toBe(2);
    expect(state.maxOpen).toBe(1);
  });

  it('stop() waits for the pass under way and drops the kicks queued behind it', async () => {
    const { state, pass } = heldPass();
    const loop = createScheduler().loop('test', pass, { everyMs: 10 });
    loop.start();
    const queued = loop.kick();
    let stopped = false;
    const stopping = loop.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    expect(loop.stopped).toBe(true);
    state.release();
    await Promise.all([stopping, queued]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(state.started).toBe(1);
  });

  it('with abandonOnStop, stop() does not wait for a hung pass', async () => {
    const { state, pass } = heldPass();
    const loop = createScheduler().loop('test', pass, { everyMs: 10, abandonOnStop: true });
    loop.start();
    await loop.stop();
    expect(state.open).toBe(1);
    expect(loop.state).toBe('stopped');
  });

  it('a failed pass is logged and the loop goes on', async () => {
    const errors: string[] = [];
    const log = { error: (_: unknown, msg: string) => errors.push(msg) } as never;
    let passes = 0;
    const loop = createScheduler({ log }).loop(
      'flaky',
      async () => {
        passes += 1;
        if (passes === 1) throw new Error('boom');
      },
      { everyMs: 10 },
    );
    loop.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(passes).toBe(2);
    expect(errors).toEqual(['flaky pass failed']);
    await loop.stop();
  });

  it('runs no pass while the gate is closed, and resumes on time when it opens', async () => {
    let open = false;
    let passes = 0;
    const scheduler = createScheduler({ gate: () => open });
    const loop = scheduler.loop('gated', async () => void (passes += 1), { everyMs: 100 });
    loop.start();
    await loop.kick();
    await vi.advanceTimersByTimeAsync(1000);
    expect(passes).toBe(0);
    expect(loop.passes).toBe(0);
    expect(loop.stopped).toBe(true); // a long pass would stop between steps
    open = true;
    expect(loop.stopped).toBe(false);
    await vi.advanceTimersByTimeAsync(100);
    expect(passes).toBe(1);
    await scheduler.stop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(passes).toBe(1);
  });

  it('runs each pass, and all it starts, under the fencing token taken when the pass began', async () => {
    let token: string | undefined = '3';
    const seen: Array<string | undefined> = [];
    const scheduler = createScheduler({ fence: () => token });
    const loop = scheduler.loop(
      'fenced',
      async () => {
        seen.push(currentFence());
        await new Promise((r) => setTimeout(r, 50));
        token = '4'; // a new lease meanwhile does not change the running pass's authority
        seen.push(currentFence());
      },
      { everyMs: 100 },
    );
    loop.start();
    await vi.advanceTimersByTimeAsync(200);
    expect(seen).toEqual(['3', '3', '4', '4']);
    expect(currentFence()).toBeUndefined();
    await scheduler.stop();
  });
});
