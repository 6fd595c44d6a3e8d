/**
 * Readiness checks of appmgr.aq (docs/modules.md): TCP (a port accepts a connection), HTTP
 * (`GET path` answers 2xx) and serial (a line of the guest's console log holds a marker), each
 * bounded by a timeout. The instance supervisor calls {@linkcode waitReady} and records the
 * result with `recordHealth` (kattach/store_appqueue.ts).
 */
import type { ReadinessCheck } from "../appqueue/mod.ts";
import { LogTail } from "../host/mod.ts";
import { stripControlsLine } from "../lib/mod.ts";
import { type DeadlineClocks, ReadinessDeadline } from "./readiness_deadline.ts";

/** Where to look for a module's readiness. */
export interface ReadinessTarget {
  /** The guest's address for tcp/http checks (a forwarded 127.0.0.1 in user-mode NAT). */
  host?: string;
  /** Overrides the check's port (e.g. a host-forwarded port in front of the guest's). */
  port?: number;
  /** The file the guest's serial console is logged to, for serial checks. */
  serialLog?: string;
  /** Bytes of `serialLog` to skip (output of an earlier boot). */
  serialFrom?: number;
  /**
   * The guest's serial log read once for all its checks ({@linkcode SerialWatch}); without it
   * each check reads `serialLog` on its own.
   */
  serial?: SerialWatch;
}

/**
 * One guest's serial log, read once for all its readiness checks: each look reads what the guest
 * printed since the last one and keeps the first line holding each marker it watches for (the
 * serial checks' markers and {@linkcode GUEST_FATAL_MARKER}). Two checks of one guest probing
 * every 50 ms read the log once between them (`freshMs`), not twice (issue 13).
 */
export class SerialWatch {
  readonly path: string;
  #tail: LogTail;
  #markers: string[];
  /** The first line holding each marker, and its place among the lines read. */
  #found = new Map<string, { line: string; at: number }>();
  #count = 0;
  #lookedAt = -Infinity;
  #now: () => number;

  /** Watches `path` from byte `from` for `markers` and the fatal marker. */
  constructor(
    path: string,
    from: number,
    markers: string[],
    now: () => number = () => performance.now(),
  ) {
    this.path = path;
    this.#tail = new LogTail(path, { from });
    this.#markers = [...new Set([...markers, GUEST_FATAL_MARKER])];
    this.#now = now;
  }

  /**
   * Reads what was added since the last look, unless that look is less than `freshMs` old or
   * nothing was added (one stat). Throws when the log cannot be read (not made yet).
   */
  look(freshMs = 0): void {
    const now = this.#now();
    if (now - this.#lookedAt < freshMs) return;
    this.#lookedAt = now;
    if (!this.#tail.changed()) return;
    for (const line of this.#tail.lines()) {
      const at = this.#count++;
      for (const m of this.#markers) {
        if (!this.#found.has(m) && line.includes(m)) this.#found.set(m, { line, at });
      }
    }
  }

  /** Whether `marker` is one this watch looks for. */
  watches(marker: string): boolean {
    return this.#markers.includes(marker);
  }

  /**
   * What the guest printed first of `marker` (one it {@linkcode watches}) and its fatal line:
   * `ready` with the marker's line, `fatal` with the fatal line's text, or neither yet.
   */
  outcome(marker: string): { ready: string } | { fatal: string } | null {
    const mark = this.#found.get(marker);
    const fatal = this.#found.get(GUEST_FATAL_MARKER);
    if (fatal && (!mark || fatal.at < mark.at)) return { fatal: fatalText(fatal.line) };
    return mark ? { ready: mark.line } : null;
  }

  /** The guest's fatal line seen (its text after the marker), if any. */
  fatal(): string | undefined {
    const fatal = this.#found.get(GUEST_FATAL_MARKER);
    return fatal === undefined ? undefined : fatalText(fatal.line);
  }
}

/** The outcome of a check. */
export interface HealthResult {
  ok: boolean;
  /** What was seen, for `instance show` and the log. */
  detail: string;
  /** Waiting longer is pointless (the guest printed its fatal line): a failure, final. */
  final?: true;
}

/** Options of the checks. */
export interface CheckOptions {
  /** Time limit of one probe in ms (default 2000). */
  probeTimeoutMs?: number;
  /**
   * A serial probe reads the log again only when the last read of it (another check's, through
   * {@linkcode ReadinessTarget.serial}) is at least this old, in ms (default 0: always).
   */
  freshMs?: number;
  signal?: AbortSignal;
}

/** Runs one probe of a readiness check. Never throws; a failure is `ok: false` with a reason. */
export async function checkReadiness(
  check: ReadinessCheck,
  target: ReadinessTarget,
  options: CheckOptions = {},
): Promise<HealthResult> {
  const timeoutMs = options.probeTimeoutMs ?? 2000;
  try {
    switch (check.type) {
      case "tcp":
        return await probeTcp(target.host ?? "127.0.0.1", target.port ?? check.port, timeoutMs);
      case "http":
        return await probeHttp(
          `http://${target.host ?? "127.0.0.1"}:${target.port ?? check.port}${check.path}`,
          timeoutMs,
          options.signal,
        );
      case "serial":
        return probeSerial(check.marker, target, options.freshMs ?? 0);
    }
  } catch (err) {
    return { ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
}

/** Options of {@linkcode waitReady}. */
export interface WaitOptions extends CheckOptions, DeadlineClocks {
  /**
   * Give up after this many ms (appmgr's readinessTimeoutSeconds × 1000) of the guest's CPU time
   * when `cpuMs` reads it, or of wall time ({@linkcode ReadinessDeadline}).
   */
  timeoutMs: number;
  /** Pause between probes in ms (default 500). */
  intervalMs?: number;
}

/**
 * What the vKaOS init prints when the guest cannot start its services (buildroot/vkaos/init: a
 * data disk that needs a manual repair or cannot be mounted). Waiting longer is pointless.
 */
export const GUEST_FATAL_MARKER = "KAOS-GUEST: fatal ";

/**
 * Probes until the check passes or the deadline (counted in the guest's CPU time, with a
 * wall-time ceiling: {@linkcode ReadinessDeadline}) has passed; the last probe's detail on
 * failure. With a serial log, a {@linkcode GUEST_FATAL_MARKER} line in it ends the wait at once,
 * failed, with that line as the detail.
 */
export async function waitReady(
  check: ReadinessCheck,
  target: ReadinessTarget,
  options: WaitOptions,
): Promise<HealthResult> {
  const deadline = new ReadinessDeadline(options.timeoutMs, options);
  let last: HealthResult = { ok: false, detail: "not checked" };
  // A serial check reads the log itself and looks for the fatal line in the same pass.
  const fatal = target.serialLog === undefined || check.type === "serial"
    ? undefined
    : target.serial ?? new SerialWatch(target.serialLog, target.serialFrom ?? 0, []);
  for (;;) {
    if (options.signal?.aborted) return { ok: false, detail: "cancelled" };
    const line = fatal && guestFatal(fatal, options.intervalMs);
    if (line) return { ok: false, detail: `the guest cannot start its services: ${line}` };
    const before = deadline.status();
    const left = before.expired ? 1 : before.left;
    const probeTimeoutMs = Math.max(1, Math.min(options.probeTimeoutMs ?? 2000, left));
    last = await checkReadiness(check, target, {
      ...options,
      probeTimeoutMs,
      freshMs: (options.intervalMs ?? 500) / 2,
    });
    if (last.ok || last.final) return last;
    const after = deadline.status();
    if (after.expired) return { ok: false, detail: `${after.reason}: ${last.detail}` };
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 500));
  }
}

/**
 * The guest's fatal line (without its marker), if it printed one; the log is looked at again
 * unless another check of the guest did so less than half an interval ago.
 */
function guestFatal(watch: SerialWatch, intervalMs = 500): string | undefined {
  try {
    watch.look(intervalMs / 2);
  } catch {
    return undefined; // no log yet: the guest has printed nothing
  }
  return watch.fatal();
}

/** A fatal line's text after its marker, without control characters, at most 400 characters. */
function fatalText(line: string): string {
  const text = line.slice(line.indexOf(GUEST_FATAL_MARKER) + GUEST_FATAL_MARKER.length);
  return stripControlsLine(text).trim().slice(0, 400);
}

async function probeTcp(host: string, port: number, timeoutMs: number): Promise<HealthResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const connecting = Deno.connect({ hostname: host, port });
  const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), timeoutMs));
  try {
    const conn = await Promise.race([connecting, timeout]);
    if (conn === "timeout") {
      connecting.then((c) => c.close(), () => {});
      return { ok: false, detail: `tcp ${host}:${port}: no answer within ${timeoutMs} ms` };
    }
    conn.close();
    return { ok: true, detail: `tcp ${host}:${port} accepts connections` };
  } catch (err) {
    return { ok: false, detail: `tcp ${host}:${port}: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

async function probeHttp(url: string, timeoutMs: number, signal?: AbortSignal) {
  const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])];
  try {
    const res = await fetch(url, { signal: AbortSignal.any(signals), redirect: "manual" });
    await res.body?.cancel();
    return res.status >= 200 && res.status < 300
      ? { ok: true, detail: `GET ${url}: ${res.status}` }
      : { ok: false, detail: `GET ${url}: HTTP ${res.status}` };
  } catch (err) {
    const e = err as Error;
    const why = e.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : e.message;
    return { ok: false, detail: `GET ${url}: ${why}` };
  }
}

/** A watch per target without one of its own, so each probe reads only what was added since. */
const watches = new WeakMap<ReadinessTarget, SerialWatch>();

function probeSerial(marker: string, target: ReadinessTarget, freshMs: number): HealthResult {
  if (!target.serialLog) return { ok: false, detail: "no serial log to watch" };
  let watch = target.serial?.watches(marker) ? target.serial : watches.get(target);
  if (watch === undefined || watch.path !== target.serialLog) {
    watch = new SerialWatch(target.serialLog, target.serialFrom ?? 0, [marker]);
    watches.set(target, watch);
  }
  try {
    // One pass for both: this check's marker, and the guest's fatal line (waitReady's).
    watch.look(freshMs);
  } catch (err) {
    return { ok: false, detail: `serial log ${target.serialLog}: ${(err as Error).message}` };
  }
  const seen = watch.outcome(marker);
  if (seen === null) {
    return { ok: false, detail: `serial: no line with ${JSON.stringify(marker)} yet` };
  }
  if ("fatal" in seen) {
    return { ok: false, detail: `the guest cannot start its services: ${seen.fatal}`, final: true };
  }
  // The line is the guest's: no control characters reach a terminal or the log.
  return { ok: true, detail: `serial: ${serialDetail(seen.ready)}` };
}

/**
 * A serial line as a health detail: without control characters, at most 200 characters, and
 * with the module's name once: vKaOS prefixes each line of a service with `<module>: `, and a
 * service that names itself too (the catalogue's `nginx: ready on port 80`, the `web` fixture
 * before session 9) shows as `nginx: nginx: ready on port 80` on the console.
 */
function serialDetail(line: string): string {
  return stripControlsLine(line).trim().replace(/^([^\s:]+): \1: /, "$1: ").slice(0, 200);
}
