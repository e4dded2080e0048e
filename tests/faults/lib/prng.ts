// A small seeded PRNG (mulberry32) so that a failing random run can be replayed from its seed.
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FAULTS_SEED if set, else a fresh one; either way the caller prints it. */
export function seedFromEnv(): number {
  const s = process.env.FAULTS_SEED;
  if (s !== undefined && s !== '') {
    const n = Number(s);
    if (!Number.isInteger(n)) throw new Error(`FAULTS_SEED=${s}: expected an integer`);
    return n;
  }
  return Math.floor(Math.random() * 2 ** 31);
}
