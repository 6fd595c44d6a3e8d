/**
 * The idle-time memory reducer of kattach and the sshd (issue 13: memory): once a process has
 * been quiet for a moment after work (no IPC request, no SSH command for `quietMs` after the last
 * one ended, none running), it runs one full V8 garbage collection and then glibc's
 * malloc_trim(0). Neither runs on a request's path: a request only counts itself in and out.
 *
 * Why both: V8 collects the old generation when it grows, not when the process goes quiet, so
 * the garbage of a burst (10,000 records built, 1,000 one-line commands) stays in the heap until
 * more work comes; and what V8 and Deno free goes back to glibc's malloc, which keeps it (big
 * blocks freed raise its mmap threshold, later ones come from its heaps, and those shrink only
 * from the top) until malloc_trim(0) releases every free page. The GC needs V8's `gc` function:
 * lib/v8_flags.ts' `--expose-gc`; without it (a test run, another launcher) only the trim runs.
 * malloc_trim comes through FFI (libc.so.6); without FFI or glibc it does nothing.
 *
 * The scheduling is pure ({@linkcode IdleScheduler}, with an injected clock); {@linkcode
 * idleMemory} is the process' one reducer on real timers.
 */

type Libc = {
  symbols: {
    malloc_trim(pad: number | bigint): number;
    mallopt(param: number, value: number): number;
  };
};
let libc: Libc | null | undefined;

/** glibc's libc.so.6 through FFI, opened once; null where there is no FFI or no glibc. */
function glibc(): Libc | null {
  if (libc === undefined) {
    try {
      libc = Deno.dlopen("libc.so.6", {
        malloc_trim: { parameters: ["usize"], result: "i32" },
        mallopt: { parameters: ["i32", "i32"], result: "i32" },
      }) as unknown as Libc;
    } catch {
      libc = null;
    }
  }
  return libc;
}

/** Calls malloc_trim(0) now; false when it is not available here. */
export function trimMalloc(): boolean {
  const c = glibc();
  if (c === null) return false;
  c.symbols.malloc_trim(0);
  return true;
}

/**
 * kattach's malloc setting, in the environment its launcher gives it (buildroot/appliance/
 * kattach_launcher.c; the benches that run kattach as the appliance does): one glibc malloc arena
 * for all its threads. glibc gives each thread that allocates an arena of its own, up to 8 per
 * core; Deno's runtime threads (tokio's workers and the blocking pool that runs file system and
 * FFI work, whose threads come and go) each fill one, and malloc_trim gives back only whole free
 * pages of each. kattach over 1,000 IPC requests (probe, 2026-11-27 22:01, hosted, load 1.2): RSS
 * +2.2 to +4.7 % with glibc's default, +0.4 and +0.5 % with MALLOC_ARENA_MAX=1, its JS heap flat
 * in both; set from inside once Deno runs (mallopt, {@linkcode limitMallocArenas}) +1.3 and
 * +3.6 %, since the runtime's threads already hold theirs. glibc reads it once, at the start:
 * {@linkcode keepMallocEnvToSelf} then takes it out of the environment the QEMUs and services
 * kattach starts inherit.
 */
export const KATTACH_MALLOC_ENV = { MALLOC_ARENA_MAX: "1" } as const;

/**
 * Removes {@linkcode KATTACH_MALLOC_ENV} from this process' environment (it took effect when the
 * process started) so that its children start with glibc's defaults.
 */
export function keepMallocEnvToSelf(): void {
  for (const name of Object.keys(KATTACH_MALLOC_ENV)) Deno.env.delete(name);
}

/** glibc's mallopt parameter M_ARENA_MAX (malloc.h). */
const M_ARENA_MAX = -8;

/**
 * Caps glibc's malloc at `max` arenas from now on (mallopt M_ARENA_MAX); false when not
 * available here. Threads that already hold an arena keep it: a kattach started without
 * {@linkcode KATTACH_MALLOC_ENV} (by hand, hosted) gets part of its effect.
 */
export function limitMallocArenas(max = 1): boolean {
  if (!(Number.isInteger(max) && max >= 1)) throw new RangeError(`max must be ≥ 1, not ${max}`);
  const c = glibc();
  if (c === null) return false;
  return c.symbols.mallopt(M_ARENA_MAX, max) === 1;
}

let pendingTrim: ReturnType<typeof setTimeout> | undefined;

/**
 * Trims `delayMs` from now unless a trim is already due: one trim per burst of calls (a menu
 * paging through a list), at most one per `delayMs` under steady traffic; the timer does not keep
 * the process alive. (The IPC clients' trim after a big answer; servers use {@linkcode
 * idleMemory}.)
 */
export function trimMallocSoon(delayMs = 1000): void {
  if (pendingTrim !== undefined) return;
  pendingTrim = setTimeout(() => {
    pendingTrim = undefined;
    trimMalloc();
  }, delayMs);
  Deno.unrefTimer(pendingTrim);
}

/** The options of V8's `gc()` (its gc extension) that the reducer uses. */
type GcOptions = { type: "major"; flavor: "last-resort" };

/** V8's `gc()` when the process runs with `--expose-gc` (lib/v8_flags.ts), else undefined. */
function exposedGc(): ((options: GcOptions) => void) | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  return typeof gc === "function" ? gc as (options: GcOptions) => void : undefined;
}

/** What one run of the reducer did, with the JS heap used and RSS (bytes) around it. */
export interface IdleRun {
  /** A full V8 GC ran (false: `gc` is not exposed in this process). */
  gc: boolean;
  /** malloc_trim(0) ran (false: no FFI or no glibc here). */
  trimmed: boolean;
  heapUsedBefore: number;
  heapUsedAfter: number;
  rssBefore: number;
  rssAfter: number;
  /** How long the GC and the trim took together. */
  ms: number;
}

const hooks = new Set<() => void>();

/**
 * Adds a step the reducer runs before its GC (kattach: SQLite's page cache goes back to malloc);
 * returns what removes it. A hook that throws is skipped, the rest runs.
 */
export function onIdleMemory(hook: () => void): () => void {
  hooks.add(hook);
  return () => hooks.delete(hook);
}

/** Runs the hooks of {@linkcode onIdleMemory}, a full V8 GC (when exposed) and malloc_trim(0). */
export function reduceMemoryNow(): IdleRun {
  const before = Deno.memoryUsage();
  const t0 = performance.now();
  for (const hook of hooks) {
    try {
      hook();
    } catch { /* e.g. the store closed meanwhile: the GC and the trim still run */ }
  }
  const gc = exposedGc();
  // "last-resort": V8's memory-reducing full GC (what its own memory reducer and a low-memory
  // notification run), collecting until nothing more frees, compacting and shrinking the heap's
  // spaces; a plain gc() left the freed pages committed (a probe: RSS 67.7 MiB after it against
  // 54.3 after this, 4 and 7 ms).
  gc?.({ type: "major", flavor: "last-resort" });
  const trimmed = trimMalloc();
  const ms = performance.now() - t0;
  const after = Deno.memoryUsage();
  return {
    gc: gc !== undefined,
    trimmed,
    heapUsedBefore: before.heapUsed,
    heapUsedAfter: after.heapUsed,
    rssBefore: before.rss,
    rssAfter: after.rss,
    ms,
  };
}

/** The clock and timer {@linkcode IdleScheduler} runs on (real ones, or a test's fake). */
export interface IdleClock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Calls `fn` once, `ms` from now; the timer must not keep the process alive. */
  setTimer(fn: () => void, ms: number): void;
}

/** Options of {@linkcode IdleScheduler}. */
export interface IdleSchedulerOptions {
  /** How long the process must have been quiet (nothing running) before the reducer runs. */
  quietMs: number;
  clock: IdleClock;
}

/**
 * When to run the reducer: `quietMs` after the last piece of work ended, with none running, and
 * once per burst (nothing since the last run: no run). A piece of work calls {@linkcode begin}
 * and {@linkcode end} (or {@linkcode touch} for an instant one): a counter and a time stamp;
 * at most one timer is pending, and a timer that finds newer work waits for the rest of the
 * quiet time instead of being re-armed on every request.
 */
export class IdleScheduler {
  readonly #run: () => void;
  readonly #quietMs: number;
  readonly #clock: IdleClock;
  #running = 0;
  #lastEnd = 0;
  #dirty = false;
  #timerDue = false;

  constructor(run: () => void, options: IdleSchedulerOptions) {
    if (!(options.quietMs > 0)) throw new RangeError(`quietMs must be > 0, not ${options.quietMs}`);
    this.#run = run;
    this.#quietMs = options.quietMs;
    this.#clock = options.clock;
  }

  /** A piece of work starts (an IPC request read, an SSH command started). */
  begin(): void {
    this.#running++;
    this.#dirty = true;
  }

  /** A piece of work started with {@linkcode begin} has ended. */
  end(): void {
    if (this.#running > 0) this.#running--;
    this.touch();
  }

  /** Work happened just now (one that has no duration of its own, e.g. the start). */
  touch(): void {
    this.#dirty = true;
    this.#lastEnd = this.#clock.now();
    if (this.#running === 0) this.#arm(this.#quietMs);
  }

  /** Pieces of work running now. */
  get running(): number {
    return this.#running;
  }

  #arm(ms: number): void {
    if (this.#timerDue) return;
    this.#timerDue = true;
    this.#clock.setTimer(() => {
      this.#timerDue = false;
      this.#check();
    }, ms);
  }

  #check(): void {
    // Work running: its end() arms the timer again. Nothing new since the last run: no run.
    if (!this.#dirty || this.#running > 0) return;
    const quiet = this.#clock.now() - this.#lastEnd;
    if (quiet < this.#quietMs) return this.#arm(this.#quietMs - quiet);
    this.#dirty = false;
    this.#run();
  }
}

/**
 * How long a process must be quiet before its reducer runs: long enough that a client's next
 * request of a burst (a menu, a script of one-line commands) comes first, short enough that the
 * memory is back before anyone looks.
 */
export const IDLE_QUIET_MS = 1500;

let reducer: IdleScheduler | undefined;
let runs = 0;
let lastRun: IdleRun | undefined;

/** This process' reducer (a full GC and malloc_trim once quiet after work), on real timers. */
export function idleMemory(): IdleScheduler {
  return reducer ??= new IdleScheduler(() => {
    lastRun = reduceMemoryNow();
    runs++;
  }, {
    quietMs: IDLE_QUIET_MS,
    clock: {
      now: () => performance.now(),
      setTimer: (fn, ms) => Deno.unrefTimer(setTimeout(fn, ms)),
    },
  });
}

/** How often this process' reducer has run and what its last run did (lib/memory_log.ts). */
export function idleMemoryRuns(): { runs: number; last?: IdleRun } {
  return { runs, last: lastRun };
}
