/**
 * mulberry32: a tiny seeded PRNG. The sandbox's probabilistic faults and the convergence test's
 * operation sequence both need runs that replay exactly for a given seed, which Math.random cannot give.
 * @param seed any number; only its low 32 bits matter.
 * @returns a generator of floats in [0, 1), the same sequence for the same seed.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
