/**
 * The delays of automatic restarts: 1 s after the first end, doubling up to 30 s, back to 1 s
 * once a guest has run for a stable minute. The clock is a parameter (tests use a fake one).
 */

/** Delays of {@linkcode RestartBackoff}, in milliseconds. */
export interface BackoffPolicy {
  firstMs: number;
  maxMs: number;
  /** A run at least this long resets the backoff. */
  stableMs: number;
}

/** KaOS' restart backoff: 1 s, 2 s, 4 s … 30 s; reset after 60 s up. */
export const RESTART_BACKOFF: BackoffPolicy = { firstMs: 1000, maxMs: 30_000, stableMs: 60_000 };

/** Per-instance restart backoff. */
export class RestartBackoff {
  #policy: BackoffPolicy;
  #now: () => number;
  #ends = new Map<string, number>();

  constructor(policy: BackoffPolicy = RESTART_BACKOFF, now: () => number = Date.now) {
    this.#policy = policy;
    this.#now = now;
  }

  /**
   * A guest that started at `startedAt` (null: unknown) ended and will be restarted: the delay
   * before its restart.
   */
  next(name: string, startedAt: number | null): number {
    if (startedAt !== null && this.#now() - startedAt >= this.#policy.stableMs) {
      this.#ends.delete(name);
    }
    const n = this.#ends.get(name) ?? 0;
    this.#ends.set(name, n + 1);
    return Math.min(this.#policy.maxMs, this.#policy.firstMs * 2 ** n);
  }

  /** Forgets an instance's history (deleted, or stopped by the operator). */
  forget(name: string): void {
    this.#ends.delete(name);
  }
}
