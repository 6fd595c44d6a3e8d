/** Shared by ipam.ts and mac.ts: the caller's used values as a set of integers. */

/**
 * Returns `used` itself when it is already a set of integers (no copy), otherwise a new set of
 * the integers that `toNumber` gives for each string (skipping `undefined`).
 */
export function usedSet(
  used: Iterable<string> | ReadonlySet<number>,
  toNumber: (s: string) => number | undefined,
): ReadonlySet<number> {
  if (used instanceof Set) {
    const first = used.values().next();
    if (first.done || typeof first.value === "number") return used as ReadonlySet<number>;
  }
  const set = new Set<number>();
  for (const value of used as Iterable<string | number>) {
    const n = typeof value === "number" ? value : toNumber(value);
    if (n !== undefined) set.add(n);
  }
  return set;
}
