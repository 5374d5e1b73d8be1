// The seed of the tests' random inputs (multipart chunking, fast-check properties): fixed, so
// every run sees the same inputs and a failure reproduces; TEST_SEED=<n> picks other inputs to
// explore, or replays the seed a failure printed (fast-check prints it; the tests name it).
export const TEST_SEED = seedFrom(process.env.TEST_SEED) ?? 20261201;

function seedFrom(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,9}$/.test(text.trim())) return undefined;
  return Number(text);
}

/** A small seeded PRNG (mulberry32): numbers in [0, 1), the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` bytes from `random`. */
export const seededBytes = (random: () => number, n: number): Buffer =>
  Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
