// The datanode's health measurement: measured figures in range, and a sampler that never makes
// GET /health wait for a sample.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { sampleSystem, startHealthSampler } from '../datanode/health.ts';
import type { SystemSample } from '../datanode/health.ts';

describe('sampleSystem', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dn-health-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('measures this machine: every percentage in 0..100, free disk bytes positive', async () => {
    const s = await sampleSystem(dir);
    for (const v of [s.cpuPercent, s.memoryPercent, s.diskPercent]) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(100);
    }
    expect(s.memoryPercent).toBeGreaterThan(0);
    expect(s.diskFreeBytes).toBeGreaterThan(0);
  });
});

describe('startHealthSampler', () => {
  const fixed = (n: number): SystemSample => ({ cpuPercent: n, memoryPercent: n, diskPercent: n, diskFreeBytes: n });
  // The sampler's clock is faked: time passes only when the test says, so what happened in
  // "a hundred intervals" is exact, not whatever a busy machine managed in a sleep.
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('the first current() waits for the first sample; later ones answer the latest at once', async () => {
    let n = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const sampler = startHealthSampler({
      dataDir: tmpdir(),
      intervalMs: 20,
      sample: async () => {
        n += 1;
        if (n === 1) await gate;
        if (n >= 3) await new Promise(() => {}); // the third sample never ends
        return fixed(n);
      },
    });
    try {
      let answered = false;
      const first = sampler.current().then((s) => ((answered = true), s));
      await expect.poll(() => n).toBe(1);
      await vi.advanceTimersByTimeAsync(2000); // a hundred intervals: the first sample still runs
      expect(answered).toBe(false);
      expect(n).toBe(1); // and none began beside it
      release();
      expect(await first).toEqual(fixed(1));
      await vi.advanceTimersByTimeAsync(40); // sample 2 done, sample 3 hangs
      expect(await sampler.current()).toEqual(fixed(2));
      expect(n).toBe(3);
      await vi.advanceTimersByTimeAsync(2000);
      expect(n).toBe(3); // a hung sample is never overlapped by another
    } finally {
      sampler.stop();
    }
  });

  it('keeps the previous sample when a later one fails, and stops sampling on stop()', async () => {
    let n = 0;
    const sampler = startHealthSampler({
      dataDir: tmpdir(),
      intervalMs: 10,
      sample: async () => {
        n += 1;
        if (n > 1) throw new Error('flaky');
        return fixed(7);
      },
    });
    expect(await sampler.current()).toEqual(fixed(7));
    await vi.advanceTimersByTimeAsync(30);
    expect(n).toBeGreaterThan(1); // it samples (and fails) on...
    expect(await sampler.current()).toEqual(fixed(7)); // ...and answers the last good sample
    sampler.stop();
    const after = n;
    await vi.advanceTimersByTimeAsync(1000); // a hundred intervals
    expect(n).toBe(after);
  });
});
