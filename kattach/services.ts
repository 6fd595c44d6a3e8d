/**
 * Supervised child services of kattach (STYLE rule 12, after gokrazy's supervise.go): each runs
 * as a child process, its output goes to kattach's log line by line, and when it exits it is
 * started again after a backoff that doubles from 1 s to 30 s (and resets after a minute of
 * healthy running). Used for the sshd and, on the appliance, the console.
 */

import { holdOwnChild, releaseOwnChild } from "../host/mod.ts";

/** What to run as a service. */
export interface ServiceSpec {
  /** Short name used in log lines, e.g. "sshd". */
  name: string;
  /** The program and its arguments. */
  argv: string[];
  /**
   * "parent-pipe": stdin is a pipe kattach never writes to, so the child sees EOF (and exits)
   * when kattach dies; "inherit": kattach's own stdin/stdout/stderr (the console as PID 1).
   */
  stdio: "parent-pipe" | "inherit";
  env?: Record<string, string>;
  /**
   * After a clean exit (status 0, e.g. the console after a logout) restart after this many ms
   * without growing the backoff; default: the backoff as for any exit.
   */
  cleanExitRestartMs?: number;
  /**
   * With "parent-pipe": the child waits for a line `go` on its stdin (`sshd --wait-go`), sent
   * once this settles; a child started again later gets it at once.
   */
  goWhen?: Promise<void>;
}

/** How services behave; the defaults suit production. */
export interface ServicesOptions {
  log(line: string): void;
  /** First restart delay; default 1000 ms. */
  minBackoffMs?: number;
  /** Longest restart delay; default 30000 ms. */
  maxBackoffMs?: number;
  /** A run longer than this resets the backoff; default 60000 ms. */
  healthyMs?: number;
}

/** A running service. */
export interface ServiceState {
  name: string;
  /** The current child's pid, or undefined between runs. */
  pid: number | undefined;
  /** How many times it has been started. */
  starts: number;
}

interface Running extends ServiceState {
  spec: ServiceSpec;
  child: Deno.ChildProcess | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  done: Promise<void>;
}

/** Starts, watches and restarts child services. */
export class Services {
  #services = new Map<string, Running>();
  #stopping = false;
  #o: Required<ServicesOptions>;

  constructor(options: ServicesOptions) {
    this.#o = { minBackoffMs: 1000, maxBackoffMs: 30_000, healthyMs: 60_000, ...options };
  }

  /** Starts a service (and keeps it running until stop()). */
  start(spec: ServiceSpec): void {
    if (this.#services.has(spec.name)) throw new Error(`service ${spec.name} already started`);
    const s: Running = {
      name: spec.name,
      spec,
      pid: undefined,
      starts: 0,
      child: undefined,
      timer: undefined,
      done: Promise.resolve(),
    };
    this.#services.set(spec.name, s);
    this.#run(s, this.#o.minBackoffMs);
  }

  /** The state of every service. */
  list(): ServiceState[] {
    return [...this.#services.values()].map((s) => ({
      name: s.name,
      pid: s.pid,
      starts: s.starts,
    }));
  }

  /** Stops every service (SIGTERM, then SIGKILL after `graceMs`) and waits for them. */
  async stop(graceMs = 3000): Promise<void> {
    this.#stopping = true;
    const waits: Promise<void>[] = [];
    for (const s of this.#services.values()) {
      clearTimeout(s.timer);
      const child = s.child;
      if (!child) continue;
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const killer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, graceMs);
      waits.push(s.done.finally(() => clearTimeout(killer)));
    }
    await Promise.all(waits);
  }

  #run(s: Running, backoff: number): void {
    if (this.#stopping) return;
    const { spec } = s;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(spec.argv[0], {
        args: spec.argv.slice(1),
        env: spec.env,
        stdin: spec.stdio === "inherit" ? "inherit" : "piped",
        stdout: spec.stdio === "inherit" ? "inherit" : "piped",
        stderr: spec.stdio === "inherit" ? "inherit" : "piped",
      }).spawn();
    } catch (err) {
      this.#o.log(`${spec.name}: cannot start: ${err instanceof Error ? err.message : err}`);
      this.#schedule(s, backoff);
      return;
    }
    s.child = child;
    s.pid = child.pid;
    holdOwnChild(child.pid); // PID 1's orphan reaper leaves it to Deno (host/reaper.ts)
    s.starts++;
    const startedAt = Date.now();
    this.#o.log(`${spec.name}: started (pid ${child.pid})`);
    if (spec.goWhen && spec.stdio === "parent-pipe") {
      spec.goWhen.catch(() => {}).then(async () => {
        const writer = child.stdin.getWriter();
        try {
          await writer.write(new TextEncoder().encode("go\n"));
        } catch {
          /* the child is gone; its exit is handled below */
        } finally {
          writer.releaseLock();
        }
      });
    }
    const pumps: Promise<void>[] = [];
    if (spec.stdio === "parent-pipe") {
      pumps.push(this.#pump(spec.name, child.stdout), this.#pump(spec.name, child.stderr));
    }
    s.done = (async () => {
      // (A status that cannot be read, e.g. a child reaped by someone else, is an exit too.)
      const status = await child.status
        .catch(() => ({ code: -1, signal: null }) as const)
        .finally(() => releaseOwnChild(child.pid));
      await Promise.all(pumps);
      s.child = undefined;
      s.pid = undefined;
      const how = status.signal
        ? `killed by ${status.signal}`
        : `exited with status ${status.code}`;
      if (this.#stopping) {
        this.#o.log(`${spec.name}: stopped (${how})`);
        return;
      }
      if (status.code === 0 && !status.signal && spec.cleanExitRestartMs !== undefined) {
        this.#o.log(`${spec.name}: ${how}; restarting in ${spec.cleanExitRestartMs} ms`);
        this.#schedule(s, spec.cleanExitRestartMs, backoff);
        return;
      }
      const next = Date.now() - startedAt >= this.#o.healthyMs ? this.#o.minBackoffMs : backoff;
      this.#o.log(`${spec.name}: ${how}; restarting in ${next} ms`);
      this.#schedule(s, next);
    })();
  }

  #schedule(s: Running, delay: number, keepBackoff?: number): void {
    if (this.#stopping) return;
    s.timer = setTimeout(() => {
      s.timer = undefined;
      this.#run(s, keepBackoff ?? Math.min(delay * 2, this.#o.maxBackoffMs));
    }, delay);
  }

  async #pump(name: string, stream: ReadableStream<Uint8Array>): Promise<void> {
    let buffered = "";
    try {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        buffered += text;
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        for (const line of lines) if (line.trim() !== "") this.#o.log(`${name}: ${line}`);
        if (buffered.length > 8192) {
          this.#o.log(`${name}: ${buffered}`);
          buffered = "";
        }
      }
    } catch { /* the child is gone */ }
    if (buffered.trim() !== "") this.#o.log(`${name}: ${buffered}`);
  }
}
