/**
 * The orphan reaper PID 1 needs: Deno reaps only the children it spawned, so orphans re-parented
 * to kattach would stay zombies. It finds zombies whose parent is us by scanning /proc/<pid>/stat
 * and calls libc `waitpid(pid, &status, WNOHANG)` on each one's own pid through FFI; never
 * `waitpid(-1)`, which would steal the exit statuses of Deno's own children.
 *
 * Deno waits on every child it spawns as soon as it exits, so one of its own children is a zombie
 * only for an instant. A zombie is therefore reaped only when two scans in a row (one interval
 * apart) saw it: that leaves Deno's children to Deno.
 *
 * Scans run when a child ends (SIGCHLD: an orphan re-parented to PID 1 signals it too) and then
 * once an interval while a zombie waits for its second look; besides, a scan at least every
 * `safetyMs` in case a signal was merged or missed. An idle appliance scans /proc twice a minute,
 * not every second (each scan reads every process' stat: under TCG a wake-up of PID 1 and some
 * hundred file reads a second).
 */

/** The fields of /proc/<pid>/stat the reaper reads. */
export interface ProcStat {
  pid: number;
  comm: string;
  /** R, S, D, Z, T, … */
  state: string;
  ppid: number;
}

/** Parses one /proc/<pid>/stat line; comm may hold spaces and parentheses. */
export function parseProcStat(text: string): ProcStat {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) {
    throw new Error(`not a /proc/<pid>/stat line: ${text.slice(0, 80)}`);
  }
  const [state, ppid] = text.slice(close + 2).split(" ");
  const stat = {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state,
    ppid: Number(ppid),
  };
  if (!Number.isInteger(stat.pid) || !Number.isInteger(stat.ppid) || !state) {
    throw new Error(`not a /proc/<pid>/stat line: ${text.slice(0, 80)}`);
  }
  return stat;
}

/** Reads /proc/<pid>/stat of every process (processes that vanish meanwhile are skipped). */
export function listProcesses(procDir = "/proc"): ProcStat[] {
  const out: ProcStat[] = [];
  for (const entry of Deno.readDirSync(procDir)) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      out.push(parseProcStat(Deno.readTextFileSync(`${procDir}/${entry.name}/stat`)));
    } catch { /* gone */ }
  }
  return out;
}

/** The pids of zombies whose parent is `parent`. */
export function zombieChildren(procs: readonly ProcStat[], parent: number): number[] {
  return procs.filter((p) => p.state === "Z" && p.ppid === parent).map((p) => p.pid);
}

/** Reaps one child by pid without blocking; returns its raw wait status, or null if not reaped. */
export type Waitpid = (pid: number) => number | null;

const WNOHANG = 1;

/** The real {@linkcode Waitpid}: libc `waitpid(pid, &status, WNOHANG)` through Deno FFI. */
export function libcWaitpid(): Waitpid {
  const lib = Deno.dlopen("libc.so.6", {
    waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  });
  const status = new Int32Array(1);
  return (pid) => {
    const r = lib.symbols.waitpid(pid, status, WNOHANG);
    return r === pid ? status[0] : null;
  };
}

/** Options of {@linkcode Reaper}. */
export interface ReaperOptions {
  /** Whose orphans to reap (default: this process, i.e. PID 1 on the appliance). */
  parent?: number;
  /** Milliseconds between the two scans that see a zombie before it is reaped (default 1000). */
  intervalMs?: number;
  /** A scan at least this often (ms, default 30 000), whether or not a SIGCHLD came. */
  safetyMs?: number;
  waitpid?: Waitpid;
  scan?: () => ProcStat[];
  log?: (line: string) => void;
}

/**
 * Pids of children this process spawned and is waiting for itself (host/run.ts registers them):
 * the reaper never reaps those, even when a starved event loop leaves one a zombie for several
 * scans (under heavy emulation a `kill` run by kattach was reaped from under Deno's own wait,
 * which then failed with ECHILD).
 */
const ownChildren = new Set<number>();

/** Marks `pid` as a child this process waits for itself; see {@linkcode releaseOwnChild}. */
export function holdOwnChild(pid: number): void {
  ownChildren.add(pid);
}

/** Forgets a child registered with {@linkcode holdOwnChild} (after its status was collected). */
export function releaseOwnChild(pid: number): void {
  ownChildren.delete(pid);
}

/** A periodic scan that reaps orphaned zombies seen in two scans in a row. */
export class Reaper {
  #parent: number;
  #intervalMs: number;
  #waitpid: Waitpid | undefined;
  #scan: () => ProcStat[];
  #log: (line: string) => void;
  #seen = new Set<number>();
  #safetyMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The next scan, when one is due (after a SIGCHLD, or for a zombie's second look). */
  #next: ReturnType<typeof setTimeout> | undefined;
  #onChild = () => this.#scanIn(0);
  #reaped = 0;

  constructor(options: ReaperOptions = {}) {
    this.#parent = options.parent ?? Deno.pid;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#safetyMs = options.safetyMs ?? 30_000;
    this.#waitpid = options.waitpid;
    this.#scan = options.scan ?? (() => listProcesses());
    this.#log = options.log ?? (() => {});
  }

  /** How many orphans this reaper has reaped. */
  get reaped(): number {
    return this.#reaped;
  }

  /** One scan: reaps the zombies the previous scan saw too; returns the pids reaped. */
  tick(): number[] {
    const zombies = zombieChildren(this.#scan(), this.#parent);
    const reaped: number[] = [];
    const next = new Set<number>();
    for (const pid of zombies) {
      if (ownChildren.has(pid)) continue;
      if (!this.#seen.has(pid)) {
        next.add(pid);
        continue;
      }
      this.#waitpid ??= libcWaitpid();
      const status = this.#waitpid(pid);
      if (status === null) continue; // someone else (Deno) reaped it meanwhile
      reaped.push(pid);
      this.#log(`reaped orphan ${pid} (wait status ${status})`);
    }
    this.#seen = next;
    this.#reaped += reaped.length;
    return reaped;
  }

  /**
   * Starts scanning: at each SIGCHLD, an interval later while a zombie waits for its second look,
   * and every `safetyMs` (the timers do not keep a hosted process alive).
   */
  start(): void {
    if (this.#timer !== undefined) return;
    Deno.addSignalListener("SIGCHLD", this.#onChild);
    const timer = setInterval(() => this.#scanIn(0), this.#safetyMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
    this.#scanIn(0); // orphans that ended before
  }

  /** Stops scanning. */
  stop(): void {
    if (this.#timer === undefined) return;
    Deno.removeSignalListener("SIGCHLD", this.#onChild);
    clearInterval(this.#timer);
    clearTimeout(this.#next);
    this.#timer = undefined;
    this.#next = undefined;
  }

  /** A scan in `ms` unless one is due already; another an interval after it if it saw zombies. */
  #scanIn(ms: number): void {
    if (this.#next !== undefined || this.#timer === undefined) return;
    const next = setTimeout(() => {
      this.#next = undefined;
      try {
        this.tick();
      } catch (err) {
        this.#log(`reaper: ${err instanceof Error ? err.message : err}`);
      }
      if (this.#seen.size > 0) this.#scanIn(this.#intervalMs);
    }, ms);
    Deno.unrefTimer(next);
    this.#next = next;
  }
}
