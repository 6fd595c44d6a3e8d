/**
 * A module's readiness deadline counted in the guest's own CPU time (its QEMU's utime + stime),
 * with a wall-time ceiling: on a loaded host a booting guest gets little of the machine, and a
 * deadline in wall time killed guests that were only waiting for a CPU (and the restarts added
 * load). A guest is "not ready" once it has used `budgetMs` of CPU time, or once
 * {@linkcode WALL_CEILING_FACTOR} × `budgetMs` of wall time has passed whatever it used (a guest
 * stuck without using CPU). CPU time counts at most as fast as wall time (a guest with several
 * busy vCPUs): no guest fails sooner than a wall-time deadline failed it. Pure: the clocks are
 * injected.
 */

/** Where a deadline reads its time. */
export interface DeadlineClocks {
  /** Wall time in ms (default `Date.now`). */
  now?: () => number;
  /** The guest's CPU time so far in ms, or undefined when it cannot be read (then wall time counts). */
  cpuMs?: () => number | undefined;
  /**
   * Count from here (the guest's start: wall time, and its CPU time then, 0 for a new process)
   * instead of from now: no reading is taken when the wait begins.
   */
  since?: { wall: number; cpu: number };
}

/** The least time between two readings of the guest's CPU time. */
export const CPU_READ_EVERY_MS = 1000;

/** How many times the deadline the wall-time ceiling is. */
export const WALL_CEILING_FACTOR = 10;

/** One readiness wait's deadline. */
export class ReadinessDeadline {
  readonly budgetMs: number;
  #now: () => number;
  #cpu: () => number | undefined;
  #wallFrom: number;
  /** The last CPU reading, with the wall time it was taken at; undefined: no CPU figure. */
  #last: { cpu: number; wall: number } | undefined;
  /** CPU time counted so far: each interval's CPU time, at most that interval's wall time. */
  #counted = 0;

  /** Starts counting now. */
  constructor(budgetMs: number, clocks: DeadlineClocks = {}) {
    this.budgetMs = budgetMs;
    this.#now = clocks.now ?? Date.now;
    this.#cpu = clocks.cpuMs ?? (() => undefined);
    if (clocks.since && clocks.cpuMs) {
      this.#wallFrom = clocks.since.wall;
      this.#last = { ...clocks.since };
      return;
    }
    this.#wallFrom = this.#now();
    const cpu = this.#cpu();
    this.#last = cpu === undefined ? undefined : { cpu, wall: this.#wallFrom };
  }

  /** The wall-time ceiling in ms. */
  get ceilingMs(): number {
    return this.budgetMs * WALL_CEILING_FACTOR;
  }

  /**
   * Where the wait stands: `left` is a lower bound of the wall time before it can expire (CPU
   * time counts no faster than wall time; it is a probe's time limit); once expired, `reason` says
   * what was counted, e.g. "not ready after 120 s of its CPU time (15 min)".
   */
  status(): { expired: false; left: number } | { expired: true; reason: string } {
    const now = this.#now();
    const wall = now - this.#wallFrom;
    // Before `budgetMs` of wall time the CPU time is read at most once a second, or sooner when
    // the deadline could have come: a guest's checks are probed every 50 ms, and reading /proc for
    // each cost kattach's JS thread while a deploy of 20 started its QEMUs (issue 13). In between,
    // the figure read last stands: CPU time counts no faster than wall time, so the wait has at
    // least this much left. From then on (a wall-time deadline applies once the reader fails) it
    // is read at every look.
    if (this.#last !== undefined && wall < this.budgetMs) {
      const since = now - this.#last.wall;
      const atLeast = this.budgetMs - this.#counted - since;
      if (since < CPU_READ_EVERY_MS && atLeast > 0) return { expired: false, left: atLeast };
    }
    const cpuNow = this.#last === undefined ? undefined : this.#cpu();
    if (cpuNow === undefined || this.#last === undefined) {
      this.#last = undefined;
      // No CPU figure (no pid, /proc unreadable, QEMU gone): the deadline is wall time.
      return wall >= this.budgetMs
        ? { expired: true, reason: `not ready after ${formatMs(wall)}` }
        : { expired: false, left: this.budgetMs - wall };
    }
    this.#counted += Math.max(0, Math.min(cpuNow - this.#last.cpu, now - this.#last.wall));
    this.#last = { cpu: cpuNow, wall: now };
    const cpu = this.#counted;
    if (cpu >= this.budgetMs) {
      return {
        expired: true,
        reason: `not ready after ${formatMs(cpu)} of its CPU time (${formatMs(wall)})`,
      };
    }
    if (wall >= this.ceilingMs) {
      return {
        expired: true,
        reason: `not ready after ${formatMs(wall)}, in which it used ${formatMs(cpu)} of CPU ` +
          `time (the deadline is ${formatMs(this.budgetMs)} of CPU time or ${
            formatMs(this.ceilingMs)
          })`,
      };
    }
    return { expired: false, left: Math.min(this.budgetMs - cpu, this.ceilingMs - wall) };
  }
}

/** A duration for people: "800 ms", "1.4 s", "120 s", "10.8 min", "1.5 h". */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${trim((ms / 1000).toFixed(1))} s`;
  if (ms < 300_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 10_800_000) return `${trim((ms / 60_000).toFixed(1))} min`;
  return `${trim((ms / 3_600_000).toFixed(1))} h`;
}

function trim(n: string): string {
  return n.endsWith(".0") ? n.slice(0, -2) : n;
}
