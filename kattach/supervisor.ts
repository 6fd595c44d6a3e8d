/**
 * The guest supervisor: one detached QEMU per instance, watched through its QMP socket. QEMU
 * outlives kattach (started in the background in a session of its own, `-pidfile`; as the user
 * `kaos-qemu` in QEMU's seccomp sandbox when kattach is root); when kattach starts again it re-attaches to
 * each running guest (pid + QMP `query-status`) instead of starting a second one. A QMP
 * connection that closes means QEMU ended: the restart policy (`always`, `on-failure`, `never`)
 * decides, with exponential backoff. Readiness (appmgr.aq) decides `running` vs `failed`.
 */
import type { Forward, Instance, Module, ModuleHealth } from "../ipc/schemas.ts";
import {
  closeFd,
  type DetachedProcess,
  listenUnixFd,
  LogTail,
  processCpuMs,
  type ProcessEnd,
  rotateAppendLog,
  SERIAL_LOG_MAX_BYTES,
  spawnDetached,
  type UserIds,
} from "../host/mod.ts";
import { UserError } from "../lib/errors.ts";
import {
  AgentClient,
  cont,
  QEMU_ENV,
  QmpError,
  QmpMonitor,
  queryBlockstats,
  queryMemorySizeSummary,
  queryStatus,
  quit,
  stop as qmpStop,
  systemPowerdown,
} from "../vmimage/mod.ts";
import type { Kattach } from "./context.ts";
import { GroupCommit } from "./group_commit.ts";
import { type HealthResult, SerialWatch, waitReady } from "./health.ts";
import {
  ensureGuestLinks,
  type GuestNetwork,
  guestNetwork,
  recordGuestNetwork,
} from "./network.ts";
import { withNicAddresses } from "./network.ts";
import { beginFirstContact, finishFirstContact, type FirstContact } from "./qmp_first.ts";
import { RestartBackoff } from "./restart_backoff.ts";
import {
  clearLeftovers,
  forgetLaunchFacts,
  type InstancePaths,
  instancePaths,
  isInstanceQemu,
  pidAlive,
  prepareInstance,
  procStats,
  qemuLogPath,
  readPidfile,
  type SharedPrep,
  warmHostFacts,
  warmInstanceCaches,
} from "./instance_runtime.ts";
import { type AgentHost, guestFigures } from "./module_agent.ts";
import { instanceHealth, recordHealth } from "./store_appqueue.ts";
import { instanceRoot } from "./storage.ts";
import { getRuntime, patchRuntime, resolveInstance } from "./store_instances.ts";
import { instanceStorage, instanceStorages } from "./store_storage.ts";

/** How long `instance stop` waits for the ACPI power-off before it sends `quit`. */
export const DEFAULT_STOP_TIMEOUT_S = 30;
/**
 * How often the serial logs of running guests are checked against their bound: a log holds at
 * most SERIAL_LOG_MAX_BYTES plus what the guest prints in this time (docs/security.md).
 */
const LOG_ROTATE_MS = 1000;
/**
 * How often a stop presses the power button again while the guest runs on: a guest still booting
 * (attached during the host's shutdown) misses a press made before its OS listens for it.
 */
export const POWER_BUTTON_REPEAT_MS = 2000;
/**
 * What vKaOS' init prints on its console once a press reached it (buildroot/vkaos/init,
 * `shutdown_guest`): from then on the stop waits for the power-off and presses no more, however
 * slowly the guest stops its services (nested TCG: seconds).
 */
export const GUEST_POWERING_OFF_MARKER = "KAOS-GUEST: powering off";

/**
 * The most a deploy's guest waits, after its own attach, for the deploy's other starts before its
 * readiness checks begin ({@linkcode SharedPrep.allAttached}).
 */
const DEPLOY_READINESS_WAIT_MS = 1000;

type Intent = "run" | "stop" | "kill" | "detach" | "fail";

/** One QEMU the supervisor watches. */
interface Guest {
  name: string;
  pid: number;
  paths: InstancePaths;
  monitor: QmpMonitor;
  intent: Intent;
  /** Why it is being ended on purpose (shown as last exit). */
  reason: string;
  ready: boolean;
  /** QEMU's status at the attach's `query-status`. */
  qmpStatus: string;
  startedAt: number;
  readiness: AbortController;
  /** The guest agent connection (docs/guest.md), made on first use and kept. */
  agent: Promise<AgentClient> | null;
  /** How often a stop has pressed its power button (`system_powerdown`). */
  presses: number;
  /** Settles once the end of this QEMU has been handled. */
  ended: Promise<void>;
}

/**
 * A start under way, from its lock until its QEMU is attached or the start has failed: what
 * {@linkcode Supervisor.stopAll} stops besides the attached guests.
 */
interface PendingStart {
  /** Its QEMU's pid once spawned. */
  pid: number | null;
  /** Set once its QEMU has exited (spawned, then ended before the attach). */
  exited: boolean;
  /** Why the host's shutdown ended it before its attach (its last exit), else null. */
  cancelled: string | null;
  /** Settles with the attached guest, or null when the start ended without one. */
  attached: Promise<Guest | null>;
  settle: (g: Guest | null) => void;
}

/** What a guest's readiness checks look at. */
interface ReadinessFacts {
  /** vKaOS, then the app modules, each with its readiness check. */
  modules: Module[];
  forwards: Forward[];
  /** Bytes of serial.log from earlier boots. */
  serialFrom: number;
  network: GuestNetwork;
}

/** Per-instance runtime figures for `instance stats` (its NICs' counters: network.ts). */
export interface GuestStats {
  instance: string;
  pid: number;
  status: string;
  cpuSeconds: number | null;
  rssBytes: number | null;
  memoryBytes: number;
  uptimeSeconds: number;
  blocks: { device: string; rdBytes: number; wrBytes: number; rdOps: number; wrOps: number }[];
  guest: Awaited<ReturnType<typeof guestFigures>>;
}

/**
 * Starts QEMU detached (as `user` when given) with no shell before it, its output appended to
 * `qemu.log` in the instance directory; returns the process and where its output starts. Its QMP
 * socket is made here, listening, and handed to QEMU (the argv's `qmpInherited`), so that the
 * attach connects at once and its first QMP exchange waits only for QEMU itself.
 */
function spawnQemu(
  argv: string[],
  o: { paths: InstancePaths; user: UserIds | null; logFrom: number },
): Launched {
  const logFile = qemuLogPath(o.paths);
  const qmp = listenUnixFd(o.paths.qmp);
  try {
    const proc = spawnDetached(argv, {
      cwd: o.paths.dir,
      logFile,
      inheritFd: qmp,
      env: QEMU_ENV,
      ...(o.user ? { user: o.user } : {}),
    });
    return { ...proc, logFile, logFrom: o.logFrom };
  } finally {
    closeFd(qmp); // QEMU holds the socket now (or nobody: a failed spawn)
  }
}

/** A QEMU just started, before its first QMP exchange. */
interface Launched extends DetachedProcess {
  logFile: string;
  /** The size of `logFile` before this QEMU started: its own output comes after. */
  logFrom: number;
}

/** The last lines this QEMU wrote to its log (its reason to exit, usually). */
async function logTail(l: Launched): Promise<string> {
  const log = await Deno.readFile(l.logFile).catch(() => new Uint8Array());
  return new TextDecoder().decode(log.subarray(l.logFrom)).trim().split("\n").slice(-3).join(" ");
}

const supervisors = new WeakMap<Kattach, Supervisor>();

/** The supervisor of a running kattach; an error when there is none (a bug). */
export function supervisorOf(k: Kattach): Supervisor {
  const s = supervisors.get(k);
  if (!s) throw new Error("the guest supervisor is not running");
  return s;
}

/** Runs instances as QEMU processes. */
export class Supervisor {
  #k: Kattach;
  #guests = new Map<string, Guest>();
  #pending = new Map<string, PendingStart>();
  #timers = new Map<string, ReturnType<typeof setTimeout>>();
  #backoff: RestartBackoff;
  #locks = new Map<string, Promise<unknown>>();
  #closing = false;
  /** Why starts are refused once closing: the host's shutdown or kattach's own stop. */
  #closingWhy = "the host is shutting down";
  #background = new Set<Promise<unknown>>();
  /** The serial logs' bound, looked at every second while a guest runs (none: no timer). */
  #rotation: ReturnType<typeof setInterval> | undefined;
  #rotating = false;
  #rotatedOnce = new Set<string>();
  #writes: GroupCommit;

  constructor(k: Kattach, options: { backoff?: RestartBackoff } = {}) {
    this.#k = k;
    this.#backoff = options.backoff ?? new RestartBackoff();
    this.#writes = new GroupCommit(k.store);
    supervisors.set(k, this);
    warmHostFacts();
  }

  /**
   * What the guest agent code (module_agent.ts) needs of the supervisor: appmgr actions of module
   * commands and configuration changes go through the guest agent, or a restart (a fresh config
   * disk). kattach/boot.ts hands it to the action handlers.
   */
  agentHost(): AgentHost {
    return {
      agent: (name) => this.agent(name),
      restart: (name) => this.restart(name),
      isAlive: (name) => this.isAlive(name),
    };
  }

  /**
   * The guest agent of a running instance: one connection per QEMU, made on first use and kept
   * (the guest's port reads as closed while nobody is connected). Requests carry their own
   * deadlines, so a silent guest holds up only its own requests.
   */
  agent(name: string): Promise<AgentClient> {
    const guest = this.#requireGuest(name, "reach the guest agent of");
    const current = guest.agent;
    if (current) {
      return current.then(
        (a) => a.isClosed ? this.#connectAgent(guest) : a,
        () => this.#connectAgent(guest),
      );
    }
    return this.#connectAgent(guest);
  }

  #connectAgent(guest: Guest): Promise<AgentClient> {
    const p = AgentClient.connect(guest.paths.agent, {
      timeoutMs: 2000,
      log: (m) => this.#k.log(`supervisor: ${guest.name}: agent: ${m}`),
    });
    guest.agent = p;
    p.catch(() => {
      if (guest.agent === p) guest.agent = null;
    });
    return p;
  }

  /** True while a QEMU of this instance is attached. */
  isAlive(name: string): boolean {
    return this.#guests.has(name);
  }

  /** The attached QEMU's pid, or null. */
  pidOf(name: string): number | null {
    return this.#guests.get(name)?.pid ?? null;
  }

  /** The pids of every attached QEMU, by instance name. */
  pids(): Map<string, number> {
    return new Map([...this.#guests.values()].map((g) => [g.name, g.pid]));
  }

  /**
   * At kattach start: re-attaches to every guest whose QEMU still runs (same pid, QMP answers),
   * settles the others per their restart policy, then starts the autostart instances.
   */
  async resume(): Promise<void> {
    this.#spawnBackground(
      warmInstanceCaches(this.#k).catch((err) =>
        this.#k.log(`supervisor: warming the instance caches: ${message(err)}`)
      ),
    );
    const live = ["starting", "running", "paused", "stopping"];
    // One read of the instances it acts on, by name and flags: not every record with its NICs
    // (10,000 of them were most of kattach's start). Settling does not change the flags.
    const all = this.#k.store.all(
      `SELECT name, state, autostart FROM instance WHERE state IN (${
        live.map((s) => `'${s}'`).join(", ")
      }) OR autostart = 1 ORDER BY vmimage, created_at, name`,
    ).map((r) => ({ name: String(r.name), state: String(r.state), autostart: r.autostart === 1 }));
    for (const inst of all) {
      if (!live.includes(inst.state)) continue;
      const paths = instancePaths(instanceRoot(this.#k, inst.name), inst.name);
      const pid = getRuntime(this.#k.store, inst.name).pid ?? await readPidfile(paths.pidfile);
      if (pid !== null && pidAlive(pid) && isInstanceQemu(pid, paths.pidfile)) {
        try {
          await this.#attach(inst.name, pid, paths, { fresh: null });
          this.#k.log(`supervisor: re-attached ${inst.name} (pid ${pid})`);
          continue;
        } catch (err) {
          this.#k.log(`supervisor: cannot re-attach ${inst.name} (pid ${pid}): ${message(err)}`);
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
      await this.#settle(inst.name, {
        failure: inst.state !== "stopping",
        why: "QEMU ended while kattach was not running",
      });
    }
    for (const inst of all) {
      if (!inst.autostart || this.#guests.has(inst.name) || this.#timers.has(inst.name)) continue;
      this.#k.log(`supervisor: autostart ${inst.name}`);
      this.#startOnItsOwn(inst.name, "autostart");
    }
  }

  /**
   * Starts an instance on kattach's own account (`autostart` at kattach's start, `restart` after
   * its QEMU ended, {@linkcode #settle}); a start that fails is tried again with the restart
   * back-off (1 s, 2 s … 30 s), unless its restart policy is `never`, an autostart is no longer set,
   * or the operator or the host acted meanwhile (a start, stop, kill or delete and the shutdown
   * cancel the retry as they cancel a restart: {@linkcode launch}, {@linkcode stop},
   * {@linkcode forget}).
   */
  #startOnItsOwn(name: string, what: "autostart" | "restart"): void {
    this.#spawnBackground(
      this.start(name).catch(async (err) => {
        const inst = resolveInstanceSafe(this.#k, name);
        const retry = !this.#closing && inst?.state === "failed" &&
          inst.restartPolicy !== "never" &&
          (what === "restart" || inst.autostart) && !this.#guests.has(name) &&
          !this.#timers.has(name);
        if (!retry) {
          this.#k.log(`supervisor: ${what} of ${name} failed: ${message(err)}`);
          return;
        }
        const delay = this.#backoff.next(name, null);
        const lastExit = getRuntime(this.#k.store, name).lastExit;
        await this.#commit(() =>
          patchRuntime(this.#k.store, name, {
            lastExit: `${lastExit}; ${what} again in ${delay / 1000} s`,
          }), { durable: false });
        this.#k.log(`supervisor: ${what} of ${name} failed: ${message(err)}; again in ${delay} ms`);
        this.#timers.set(
          name,
          setTimeout(() => {
            this.#timers.delete(name);
            if (this.#closing) return;
            const now = resolveInstanceSafe(this.#k, name);
            if (!now || (what === "autostart" && !now.autostart)) return;
            this.#k.log(`supervisor: ${what} of ${name} (again)`);
            this.#startOnItsOwn(name, what);
          }, delay),
        );
      }),
      `the ${what} of ${name}`,
    );
  }

  /** Starts an instance's QEMU; with `wait`, also waits until it is ready (or failed). */
  async start(name: string, options: { wait?: boolean } = {}): Promise<Instance> {
    await this.launch(name, options);
    return this.#show(name);
  }

  /**
   * {@linkcode start}, saying what QEMU answered to its first `query-status` (`running` unless
   * it was started paused) and the instance's state and pid then, not the whole instance (a
   * deploy reads its instances once, together, for its answer).
   */
  async launch(
    name: string,
    options: { wait?: boolean; shared?: SharedPrep } = {},
  ): Promise<{ qmpStatus: string; state: Instance["state"]; pid: number | null }> {
    // The appliance: QEMU comes with its second archive (kattach/late_archive.ts); a start waits
    // for it (holding no lock), and fails with the reason when it is missing or corrupt.
    let guest: Guest;
    try {
      await this.#k.guestRuntime?.();
      guest = await this.#start(name, options);
    } finally {
      options.shared?.attached(name);
    }
    // Outside the lock: a stop (or the host's shutdown) of a starting instance need not wait
    // for its readiness.
    if (options.wait) await this.#waitSettled(guest);
    return {
      qmpStatus: guest.qmpStatus,
      state: this.#k.store.instanceState(name) ?? "defined",
      pid: this.pidOf(name),
    };
  }

  /** {@linkcode launch} under the instance's lock: files, links, spawn, first QMP exchange. */
  #start(name: string, options: { shared?: SharedPrep }): Promise<Guest> {
    return this.#locked(name, async () => {
      this.#cancelTimer(name);
      const inst = resolveInstance(this.#k.store, name);
      if (this.#guests.has(name)) {
        throw new UserError(`Cannot start ${name}: it is ${inst.state} already`, {
          hint: `see \`instance show ${name}\``,
          code: "conflict",
        });
      }
      if (this.#closing) throw closed(name, this.#closingWhy);
      const rt = getRuntime(this.#k.store, name);
      const pending = this.#beginPending(name);
      // Committed while the files are prepared (one group with the other starts under way);
      // awaited before QEMU is spawned.
      const starting = this.#commit(() => this.#setState(name, "starting"), { durable: false });
      starting.catch(() => {}); // awaited below; a start that fails earlier reports its own error
      let launched: Launched | undefined;
      let connecting: FirstContact | undefined;
      let paths: InstancePaths;
      let argv: string[] = [];
      let known: ReadinessFacts | undefined;
      const logArgv = () => this.#k.log(`supervisor: ${name}: argv: ${JSON.stringify(argv)}`);
      // Where the start's time goes (logged with "started"; bench/deploy.ts, issue 13).
      const t0 = options.shared?.t0 ?? performance.now();
      const since = () => Math.round(performance.now() - t0);
      let prepared = 0;
      let linked = 0;
      let committed = 0;
      let spawnFrom = 0;
      let spawned = 0;
      let startedAt = 0;
      let machineWhy = "";
      try {
        // The files and the host's links at once: neither needs the other, and QEMU is spawned
        // only once both are done (its taps on their bridges, the firewall naming them).
        const prep = await bothOrFirstError(
          ensureGuestLinks(this.#k, inst).then(() => void (linked = since())),
          prepareInstance(this.#k, inst, {
            machine: rt.machine,
            previousForwards: rt.forwards,
            ...(options.shared ? { shared: options.shared } : {}),
          }).then((p) => (prepared = since(), p)),
        );
        paths = prep.paths;
        argv = prep.argv;
        known = {
          modules: prep.modules,
          forwards: prep.forwards,
          serialFrom: prep.serialFrom,
          network: prep.network,
        };
        // Committed now if the turn's timer has not come yet (the files were written at once).
        this.#writes.flush();
        await starting;
        committed = since();
        // A deploy's starts spawn their QEMUs together, once all have their files.
        await options.shared?.arrive(name);
        // The host began shutting down (or kattach stopping) while this start prepared: its QEMU
        // is not spawned.
        if (this.#closing) {
          pending.cancelled = `start cancelled: ${this.#closingWhy}`;
          throw closed(name, this.#closingWhy);
        }
        spawnFrom = since();
        launched = spawnQemu(prep.argv, { paths, user: prep.user, logFrom: prep.logFrom });
        pending.pid = launched.pid;
        launched.exited.then(() => pending.exited = true);
        // QMP from now on (QEMU's socket comes some 25 ms later), while its pid is recorded.
        connecting = this.#connect(name, paths, launched);
        connecting.connecting.catch(() => {}); // #attach reports it
        spawned = since();
        machineWhy = prep.machineWhy;
        const pid = launched.pid;
        startedAt = Date.now();
        // One transaction with the other starts under way, not waiting for the disk.
        await this.#commit(() => {
          patchRuntime(this.#k.store, name, {
            pid,
            forwards: prep.forwards,
            serialFrom: prep.serialFrom,
            startedAt: new Date(startedAt).toISOString(),
          });
          recordGuestNetwork(this.#k.store, name, prep.network);
          for (const m of prep.modules) {
            recordHealth(this.#k.store, {
              instance: name,
              module: m.name,
              status: "starting",
              detail: "booting",
            });
          }
        }, { durable: false });
      } catch (err) {
        // A QEMU launched for a start that failed after all does not stay behind.
        if (launched) killPid(launched.pid);
        connecting?.connecting.then((m) => m.close(), () => {});
        await starting.catch(() => {}); // "failed" comes after "starting", not before
        if (argv.length > 0) logArgv();
        if (pending.cancelled) this.#cancelStart(name, pending.cancelled);
        else this.#failStart(name, `start failed: ${message(err)}`);
        this.#endPending(name, null);
        throw err;
      }
      const guest = await this.#attach(name, launched.pid, paths, {
        fresh: { startedAt },
        launched,
        known,
        connecting,
        ...(options.shared
          ? { readinessAfter: options.shared.allAttached(DEPLOY_READINESS_WAIT_MS) }
          : {}),
      })
        .catch((err) => {
          logArgv();
          // Killed by the host's shutdown before its QMP attached: stopped, not failed.
          if (pending.cancelled) this.#cancelStart(name, pending.cancelled);
          this.#endPending(name, null);
          throw err;
        });
      this.#endPending(name, guest);
      const q = guest.monitor.connectStats;
      // One line per start (each is a write on the JS thread while other starts are under way):
      // the machine and why, the accelerator (TCG: kattach's start says why), where the time went.
      this.#k.log(
        `supervisor: started ${name} (pid ${launched.pid}; ${machineWhy}; ${this.#k.accel.kind.toUpperCase()}; ms since the ${
          options.shared ? "deploy" : "start"
        }: files ${prepared}, links ${linked}, starting committed ${committed}, spawn ${spawnFrom}-${spawned}, QMP socket ${
          spawned + q.socketMs
        } (${q.tries} tries), capabilities ${spawned + q.readyMs}, attached ${since()})`,
      );
      return guest;
    });
  }

  /**
   * ACPI power-off (`system_powerdown`: the power button, on q35 and on microvm through its GED
   * device), pressed again every {@linkcode POWER_BUTTON_REPEAT_MS} while the guest runs on (a
   * guest still booting misses a press made before its OS listens); after `timeoutSeconds` QMP
   * `quit`; then SIGKILL. The host's shutdown ({@linkcode stopAll}) stops each guest this way.
   */
  stop(name: string, options: { timeoutSeconds?: number } = {}): Promise<Instance> {
    return this.#locked(name, async () => {
      const guest = this.#guests.get(name);
      if (!guest) return this.#notRunning(name, "stop");
      guest.intent = "stop";
      guest.reason = "stopped by the operator";
      guest.readiness.abort();
      this.#setState(name, "stopping");
      const timeoutMs = (options.timeoutSeconds ?? DEFAULT_STOP_TIMEOUT_S) * 1000;
      const deadline = Date.now() + timeoutMs;
      try {
        const status = await queryStatus(guest.monitor, { timeoutMs: 5000 });
        if (!status.running) await cont(guest.monitor, { timeoutMs: 5000 });
      } catch (err) {
        this.#k.log(`supervisor: ${name}: powerdown: ${message(err)}`);
      }
      // Only what the guest prints from now on answers this stop's presses.
      const serial = new LogTail(guest.paths.serialLog, { from: fileSize(guest.paths.serialLog) });
      let off = false;
      for (;;) {
        guest.presses++;
        try {
          await systemPowerdown(guest.monitor, { timeoutMs: 5000 });
        } catch (err) {
          // Once: a QMP that fails one press fails the next ones alike.
          if (guest.presses === 1) this.#k.log(`supervisor: ${name}: powerdown: ${message(err)}`);
        }
        const left = deadline - Date.now();
        off = await settledWithin(guest.ended, Math.max(0, Math.min(POWER_BUTTON_REPEAT_MS, left)));
        if (off) break;
        if (poweringOff(serial)) {
          // A press reached it and it is stopping its services: another press would only be
          // ignored (and counted), so wait for the power-off until the deadline.
          this.#k.log(
            `supervisor: ${name}: powering off after ${guest.presses} press${
              guest.presses === 1 ? "" : "es"
            }, still running ${POWER_BUTTON_REPEAT_MS} ms later: waiting for it`,
          );
          off = await settledWithin(guest.ended, Math.max(0, deadline - Date.now()));
          break;
        }
        if (left <= POWER_BUTTON_REPEAT_MS) break;
        if (guest.presses === 1) {
          this.#k.log(
            `supervisor: ${name}: no power-off yet: pressing the power button every ${POWER_BUTTON_REPEAT_MS} ms`,
          );
        }
      }
      if (!off) {
        this.#k.log(`supervisor: ${name}: no power-off after ${timeoutMs} ms: quit`);
        const why = guest.reason;
        guest.reason = `${why}: no power-off within ${timeoutMs / 1000} s, ended by quit`;
        await quit(guest.monitor, { timeoutMs: 5000 }).catch(() => {});
        if (!await settledWithin(guest.ended, 5000)) {
          guest.reason = `${why}: no power-off within ${timeoutMs / 1000} s, killed`;
          this.#signal(guest, "SIGKILL");
        }
      }
      await guest.ended;
      return this.#show(name);
    });
  }

  /** Ends QEMU at once (SIGKILL); no restart follows. */
  kill(name: string): Promise<Instance> {
    return this.#locked(name, async () => {
      const guest = this.#guests.get(name);
      if (!guest) return this.#notRunning(name, "kill");
      guest.intent = "kill";
      guest.reason = "killed by the operator";
      guest.readiness.abort();
      this.#signal(guest, "SIGKILL");
      await guest.ended;
      return this.#show(name);
    });
  }

  /** Stops then starts an instance (a fresh QEMU and config disk). */
  async restart(name: string, options: { wait?: boolean } = {}): Promise<Instance> {
    if (this.#guests.has(name)) await this.stop(name);
    return await this.start(name, options);
  }

  /**
   * Pauses the vCPUs (QMP `stop`). One already paused is refused (`conflict`), as a start of a
   * running instance is: QEMU's own status says which.
   */
  pause(name: string): Promise<Instance> {
    return this.#locked(name, async () => {
      const guest = this.#requireGuest(name, "pause");
      const now = await queryStatus(guest.monitor, { timeoutMs: 5000 });
      if (!now.running) {
        const how = now.status === "paused" ? "" : ` (QEMU: ${now.status})`;
        throw new UserError(`Cannot pause ${name}: it is paused already${how}`, {
          hint: `resume it with \`instance resume ${name}\``,
          code: "conflict",
        });
      }
      await qmpStop(guest.monitor);
      this.#setState(name, "paused");
      return this.#show(name);
    });
  }

  /** Resumes paused vCPUs (QMP `cont`); one whose vCPUs run is refused (`conflict`). */
  resumeGuest(name: string): Promise<Instance> {
    return this.#locked(name, async () => {
      const guest = this.#requireGuest(name, "resume");
      if ((await queryStatus(guest.monitor, { timeoutMs: 5000 })).running) {
        const inst = resolveInstance(this.#k.store, name);
        throw new UserError(`Cannot resume ${name}: it is ${inst.state}, not paused`, {
          hint: `see \`instance show ${name}\``,
          code: "conflict",
        });
      }
      await cont(guest.monitor);
      this.#setState(name, guest.ready ? "running" : "starting");
      return this.#show(name);
    });
  }

  /** Sends any QMP command; QEMU's refusal becomes a UserError carrying its class. */
  async qmp(name: string, command: string, args?: Record<string, unknown>): Promise<unknown> {
    const guest = this.#requireGuest(name, "send QMP commands to");
    try {
      return await guest.monitor.execute(command, args, { timeoutMs: 30_000 });
    } catch (err) {
      if (err instanceof QmpError) {
        throw new UserError(`QMP ${command} failed: ${err.class}: ${err.desc}`, {
          hint: "see `qmp NAME query-commands` for what this QEMU understands",
          code: "qmp-error",
        });
      }
      throw err;
    }
  }

  /** QMP events of a running instance from now on, until `signal` aborts or QEMU ends. */
  events(name: string, signal?: AbortSignal): ReturnType<QmpMonitor["events"]> {
    return this.#requireGuest(name, "watch the QMP events of").monitor.events({ signal });
  }

  /** CPU time and memory from /proc, block counters and memory size from QMP. */
  async stats(name: string): Promise<GuestStats> {
    const guest = this.#requireGuest(name, "show stats of");
    const [status, mem, blocks] = await Promise.all([
      queryStatus(guest.monitor),
      queryMemorySizeSummary(guest.monitor),
      queryBlockstats(guest.monitor),
    ]);
    const proc = procStats(guest.pid);
    const agent = await this.agent(name).catch(() => null);
    return {
      instance: name,
      pid: guest.pid,
      status: status.status,
      cpuSeconds: proc?.cpuSeconds ?? null,
      rssBytes: proc?.rssBytes ?? null,
      memoryBytes: mem.baseMemory + (mem.pluggedMemory ?? 0),
      uptimeSeconds: Math.round((Date.now() - guest.startedAt) / 100) / 10,
      blocks: blocks.map((b) => ({
        device: b.device || b.qdev || b.nodeName || "?",
        rdBytes: b.stats.rdBytes,
        wrBytes: b.stats.wrBytes,
        rdOps: b.stats.rdOperations,
        wrOps: b.stats.wrOperations,
      })),
      guest: await guestFigures(agent),
    };
  }

  /** The console socket of a running instance. */
  consoleSocket(name: string): string {
    return this.#requireGuest(name, "attach to the console of").paths.console;
  }

  /** Forgets a stopped instance's pending restart (before `instance del`). */
  forget(name: string): void {
    this.#cancelTimer(name);
    this.#backoff.forget(name);
  }

  /**
   * The host is going down: no more restarts, no more spawns, and every guest gets its ACPI
   * power-off at once (then `quit`, then SIGKILL, as `stop`), a starting one once its QMP
   * attaches; one whose QMP has not attached when the timeout ends is killed by its pid. Returns
   * the names of the guests it stopped, the starting ones included.
   */
  async stopAll(options: { timeoutSeconds?: number } = {}): Promise<string[]> {
    this.#closing = true;
    this.#stopRotation();
    for (const name of [...this.#timers.keys()]) this.#cancelTimer(name);
    const deadline = Date.now() + (options.timeoutSeconds ?? DEFAULT_STOP_TIMEOUT_S) * 1000;
    const names = [...this.#guests.keys()];
    const starting = [...this.#pending.keys()].filter((n) => !this.#guests.has(n));
    this.#k.log(
      `supervisor: stopping ${names.length + starting.length} guest(s): ${
        names.join(", ") || "none"
      }; starting: ${starting.join(", ") || "none"}`,
    );
    const stopped = (name: string) => () => this.#k.log(`supervisor: ${name} stopped`);
    const failed = (name: string) => (err: unknown) =>
      this.#k.log(`supervisor: ${name}: stop failed: ${message(err)}`);
    await Promise.all([
      ...names.map((name) => this.stop(name, options).then(stopped(name), failed(name))),
      ...starting.map((name) =>
        this.#stopStarting(name, deadline).then(stopped(name), failed(name))
      ),
    ]);
    return [...names, ...starting];
  }

  /**
   * A start in flight at the host's shutdown: one not spawned yet does not spawn (launch sees
   * `#closing`); a spawned one is stopped once its QMP attaches, with what is left of the
   * deadline; when it has not attached by the deadline, its QEMU is killed by its pid.
   */
  async #stopStarting(name: string, deadline: number): Promise<void> {
    const p = this.#pending.get(name);
    if (!p) return;
    const attached = await valueWithin(p.attached, deadline - Date.now());
    if (attached === undefined && p.pid === null) {
      // Still preparing its files: it will not spawn (launch checks `#closing` before it does).
      this.#k.log(`supervisor: ${name}: not spawned by the deadline; it will not spawn`);
      return;
    }
    if (attached === undefined) {
      p.cancelled = "killed: the host shut down before its QMP attached";
      this.#k.log(`supervisor: ${name}: ${p.cancelled} (pid ${p.pid ?? "none"})`);
      if (p.pid !== null && !p.exited) killPid(p.pid);
      await p.attached; // the kill ends its first QMP exchange at once (#connect)
      return;
    }
    if (attached === null) return; // its start ended without a QEMU
    const left = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
    await this.stop(name, { timeoutSeconds: left });
  }

  /**
   * kattach is stopping: let go of every QEMU without ending it (they keep running and are
   * re-attached at the next start) and cancel pending restarts.
   */
  async detach(): Promise<void> {
    if (!this.#closing) this.#closingWhy = "kattach is stopping";
    this.#closing = true;
    this.#stopRotation();
    for (const name of [...this.#timers.keys()]) this.#cancelTimer(name);
    // Starts in flight: one not spawned yet does not spawn; a spawned one is let go of too, once
    // attached (its first QMP exchange has a deadline of its own).
    await Promise.all([...this.#pending.values()].map((p) => p.attached));
    const guests = [...this.#guests.values()];
    for (const g of guests) {
      g.intent = "detach";
      g.readiness.abort();
    }
    await Promise.all(guests.map((g) => g.monitor.close()));
    await Promise.all(guests.map((g) => g.ended));
    await Promise.allSettled([...this.#background]);
    supervisors.delete(this.#k);
  }

  // ---- internals ----

  async #attach(
    name: string,
    pid: number,
    paths: InstancePaths,
    o: {
      /** A QEMU this kattach just started (at `startedAt`, ms), not one found running. */
      fresh: { startedAt: number } | null;
      launched?: Launched;
      known?: ReadinessFacts;
      /** The QMP connection a start began right after the spawn ({@linkcode #connect}). */
      connecting?: FirstContact;
      /** The readiness checks begin once this resolves (a deploy's other starts attached). */
      readinessAfter?: Promise<void>;
    },
  ): Promise<Guest> {
    let monitor: QmpMonitor;
    let status: Awaited<ReturnType<typeof queryStatus>>;
    try {
      // The connection and the status under one deadline (a loaded machine is slow at both).
      ({ monitor, status } = await finishFirstContact(
        o.connecting ?? this.#connect(name, paths, o.launched),
      ));
    } catch (err) {
      if (!o.fresh) throw err;
      const l = o.launched;
      // The connection closing under us: QEMU is likely on its way out; give it a moment.
      // Whatever the socket saw (closed, reset), a QEMU that ended within a second of it refused
      // to start: its own words say why.
      if (l && (err instanceof QemuExited || await settledWithin(l.exited, 1000))) {
        const end = await l.exited;
        const why = `QEMU refused to start: ${
          await logTail(l) || `it ended (${describeEnd(end)}) before its first QMP exchange`
        }`;
        this.#failStart(name, why);
        throw new UserError(`Cannot start ${name}: ${why}`, {
          hint: `QEMU's output is in ${l.logFile}; the argv is in the kattach log`,
        });
      }
      // A QEMU we cannot drive is no guest: end it, and say why the instance failed.
      killPid(pid);
      const why = `QEMU started but its first QMP exchange failed (QEMU was killed): ${
        message(err)
      }`;
      this.#failStart(name, why);
      throw new UserError(`Cannot start ${name}: ${why}`, {
        hint: `see the kattach log and ${paths.dir}`,
        code: "start-failed",
      });
    }
    // A fresh start knows its state (starting) and when it began; one found running reads them.
    const inst = o.fresh ? null : resolveInstance(this.#k.store, name);
    const rtStartedAt = o.fresh ? null : getRuntime(this.#k.store, name).startedAt;
    let done!: () => void;
    const guest: Guest = {
      name,
      pid,
      paths,
      monitor,
      intent: "run",
      reason: "",
      ready: inst?.state === "running",
      qmpStatus: status.status,
      startedAt: o.fresh?.startedAt ?? (rtStartedAt ? Date.parse(rtStartedAt) : Date.now()),
      readiness: new AbortController(),
      agent: null,
      presses: 0,
      ended: new Promise<void>((r) => done = r),
    };
    this.#guests.set(name, guest);
    if (this.#rotation === undefined && !this.#closing) {
      this.#rotation = setInterval(() => this.#rotateLogs(), LOG_ROTATE_MS);
      Deno.unrefTimer(this.#rotation);
    }
    if (status.status === "paused" || (!status.running && status.status !== "shutdown")) {
      if (!o.fresh) this.#setState(name, "paused");
    } else if (inst?.state === "paused") {
      this.#setState(name, guest.ready ? "running" : "starting");
    }
    if (!guest.ready) {
      const after = o.readinessAfter ?? Promise.resolve();
      this.#spawnBackground(
        after.then(() => this.#checkReadiness(guest, o.known)),
        `the readiness check of ${name}`,
      );
    }
    this.#spawnBackground(this.#watchEvents(guest), `the event watch of ${name}`);
    this.#spawnBackground(
      monitor.closed.then(() => this.#onClosed(guest)).finally(() => {
        guest.agent?.then((a) => a.close(), () => {});
        done();
      }),
      `the end of ${name}'s QEMU`,
    );
    return guest;
  }

  /**
   * The first QMP exchange with an instance's QEMU (greeting, capabilities); one that exits
   * before it (`launched`) ends the wait at once.
   */
  #connect(name: string, paths: InstancePaths, launched?: Launched): FirstContact {
    const exited = new AbortController();
    launched?.exited.then((end) => exited.abort(new QemuExited(end)));
    return beginFirstContact(paths.qmp, {
      log: (m) => this.#k.log(`supervisor: ${name}: qmp: ${m}`),
      signal: exited.signal,
    });
  }

  async #watchEvents(g: Guest): Promise<void> {
    try {
      for await (const ev of g.monitor.events()) {
        if (g.intent !== "run") continue;
        const state = resolveInstanceSafe(this.#k, g.name)?.state;
        if (ev.event === "STOP" && (state === "running" || state === "starting")) {
          this.#setState(g.name, "paused");
        } else if (ev.event === "RESUME" && state === "paused") {
          this.#setState(g.name, g.ready ? "running" : "starting");
        }
      }
    } catch { /* the connection closed */ }
  }

  /**
   * Waits for each module's readiness and records it. `known`: what a start just prepared (its
   * modules, forwards, serial offset, network), instead of reading it back from the store.
   */
  async #checkReadiness(g: Guest, known?: ReadinessFacts): Promise<void> {
    const facts = known ?? this.#readinessFacts(g.name);
    if (!facts) return;
    const { modules, forwards, serialFrom } = facts;
    // A guest on a bridged VLAN is checked at its own address; else through its forwards.
    const own = facts.network.nics.find((n) => n.address)?.address?.split("/")[0];
    // The first module that is not ready fails the guest: the others' waits end then (vKaOS's
    // 120 s deadline has a 20 min ceiling; a guest stuck without CPU waited for that).
    const giveUp = new AbortController();
    const signal = AbortSignal.any([g.readiness.signal, giveUp.signal]);
    let first: string | undefined;
    // The guest's serial log, read once for all its checks (and the fatal line).
    const serial = new SerialWatch(
      g.paths.serialLog,
      serialFrom,
      modules.flatMap((m) =>
        m.appmgr.readiness.type === "serial" ? [m.appmgr.readiness.marker] : []
      ),
    );
    const results = await Promise.all(modules.map(async (m) => {
      const check = m.appmgr.readiness;
      const fwd = check.type === "serial"
        ? undefined
        : forwards.find((f) => f.guestPort === check.port);
      const result = await waitReady(check, {
        host: own ?? "127.0.0.1",
        port: own ? (check.type === "serial" ? 1 : check.port) : fwd?.hostPort ?? 1,
        serialLog: g.paths.serialLog,
        serialFrom,
        serial,
      }, {
        // Counted in the guest's CPU time (a starved guest is not a stuck one), with a ceiling of
        // 10× in wall time (kattach/readiness_deadline.ts).
        timeoutMs: m.appmgr.readinessTimeoutSeconds * 1000,
        cpuMs: () => processCpuMs(g.pid),
        // From the QEMU's start, its CPU time 0 then: no /proc reading when the wait begins.
        since: { wall: g.startedAt, cpu: 0 },
        // A serial check reads a small local file: poll it often, it is on the path to ready.
        intervalMs: check.type === "serial" ? 50 : 500,
        signal,
      });
      if (g.readiness.signal.aborted || g.intent !== "run") return result;
      const cut = !result.ok && first !== undefined && result.detail === "cancelled";
      if (!result.ok && first === undefined) {
        first = m.name;
        giveUp.abort();
      }
      await this.#commit(() =>
        recordHealth(this.#k.store, {
          instance: g.name,
          module: m.name,
          status: result.ok ? "ready" : "failed",
          detail: cut ? `no longer waited for: ${first} was not ready` : result.detail,
        }), { durable: false });
      return cut ? null : result;
    }));
    if (g.readiness.signal.aborted || g.intent !== "run") return;
    if (results.every((r) => r?.ok)) {
      await this.#commit(() => {
        if (resolveInstanceSafe(this.#k, g.name)?.state === "starting") {
          this.#setState(g.name, "running");
        }
      }, { durable: false });
      // Ready only once "running" is committed: a start waiting for it (#waitSettled) then shows
      // the instance from the store, and saw "starting" when this came first.
      g.ready = true;
      this.#k.log(`supervisor: ${g.name} is ready`);
      return;
    }
    const failed = results.map((r, i) => [modules[i].name, r] as const)
      .filter((e): e is readonly [string, HealthResult] => e[1] !== null && !e[1].ok);
    g.intent = "fail";
    g.reason = `not ready: ${failed.map(([m, r]) => `${m}: ${r.detail}`).join("; ")}`;
    this.#k.log(`supervisor: ${g.name}: ${g.reason}`);
    this.#signal(g, "SIGKILL");
  }

  /** What the readiness checks of a guest attached again after a kattach restart need. */
  #readinessFacts(name: string): ReadinessFacts | null {
    const inst = resolveInstanceSafe(this.#k, name);
    const image = inst && this.#k.store.getVmImage(inst.vmimage);
    const vkaos = this.#k.store.getVkaos();
    if (!inst || !image || !vkaos) return null;
    const rt = getRuntime(this.#k.store, name);
    return {
      modules: [vkaos, ...image.modules.map((m) => this.#k.store.getModule(m)!)],
      forwards: rt.forwards,
      serialFrom: rt.serialFrom,
      network: guestNetwork(this.#k, inst),
    };
  }

  async #onClosed(g: Guest): Promise<void> {
    if (g.intent === "detach") {
      this.#guests.delete(g.name);
      return;
    }
    g.readiness.abort();
    for (let i = 0; i < 50 && pidAlive(g.pid); i++) await sleep(100);
    if (pidAlive(g.pid)) this.#signal(g, "SIGKILL");
    this.#guests.delete(g.name);
    await clearLeftovers(g.paths);
    const shutdown = g.monitor.recentEvents().filter((e) => e.event === "SHUTDOWN").at(-1);
    const reason = String((shutdown?.data as { reason?: string } | undefined)?.reason ?? "");
    let failure: boolean;
    let why: string;
    if (g.intent === "stop" || g.intent === "kill") {
      failure = false;
      why = g.reason;
      if (g.intent === "stop" && reason === "guest-shutdown") {
        why += `: the guest powered off after ${g.presses} press${
          g.presses === 1 ? "" : "es"
        } of its power button`;
      }
    } else if (g.intent === "fail") {
      failure = true;
      why = g.reason;
    } else if (reason === "guest-shutdown") {
      failure = false;
      why = "the guest powered off";
    } else {
      failure = true;
      why = reason ? `QEMU ended (${reason})` : "QEMU ended unexpectedly (no SHUTDOWN event)";
    }
    await this.#settle(g.name, {
      failure,
      why,
      operator: g.intent === "stop" || g.intent === "kill",
      startedAt: g.startedAt,
    });
  }

  /** Records how a QEMU ended and schedules a restart when the policy asks for one. */
  async #settle(
    name: string,
    o: { failure: boolean; why: string; operator?: boolean; startedAt?: number },
  ): Promise<void> {
    const inst = resolveInstanceSafe(this.#k, name);
    if (!inst) return;
    const policy = inst.restartPolicy;
    const restart = !o.operator && !this.#closing &&
      (policy === "always" || (policy === "on-failure" && o.failure));
    if (o.operator) this.#backoff.forget(name);
    const delay = restart ? this.#backoff.next(name, o.startedAt ?? null) : 0;
    const rt = getRuntime(this.#k.store, name);
    await this.#commit(() => {
      this.#setState(name, o.failure ? "failed" : "stopped");
      patchRuntime(this.#k.store, name, {
        pid: null,
        lastExit: o.why + (restart ? `; restarting in ${delay / 1000} s (${policy})` : ""),
      });
    }, { durable: true });
    this.#k.log(`supervisor: ${name}: ${o.why}${restart ? `; restart in ${delay} ms` : ""}`);
    if (!restart) return;
    await Promise.resolve();
    this.#timers.set(
      name,
      setTimeout(() => {
        this.#timers.delete(name);
        // In the background's care: a throw here is logged as a bug, not left to the timer.
        this.#spawnBackground(
          Promise.resolve().then(() => {
            if (this.#closing || !resolveInstanceSafe(this.#k, name)) return;
            patchRuntime(this.#k.store, name, { restarts: rt.restarts + 1 });
            this.#startOnItsOwn(name, "restart");
          }),
          `the restart of ${name}`,
        );
      }, delay),
    );
  }

  async #waitSettled(g: Guest): Promise<void> {
    while (
      this.#guests.get(g.name) === g && !g.ready && g.intent === "run" && !this.#closing
    ) await sleep(100);
    // Failed readiness: its QEMU is being killed; wait for its end to be recorded so the answer
    // shows the state and the last exit, not "starting" (#onClosed gives it 5 s, then SIGKILL).
    if (g.intent === "fail") await settledWithin(g.ended, 10_000);
  }

  #signal(g: Guest, signal: Deno.Signal): void {
    if (!isInstanceQemu(g.pid, g.paths.pidfile)) return;
    try {
      Deno.kill(g.pid, signal);
    } catch { /* gone */ }
  }

  #requireGuest(name: string, doing: string): Guest {
    const guest = this.#guests.get(name);
    if (!guest) {
      const inst = resolveInstance(this.#k.store, name);
      throw new UserError(`Cannot ${doing} ${name}: it is ${inst.state}`, {
        hint: `start it first (\`instance start ${name}\`)`,
        code: "not-running",
      });
    }
    return guest;
  }

  #notRunning(name: string, doing: string): Instance {
    const inst = resolveInstance(this.#k.store, name);
    if (this.#timers.has(name)) {
      this.#cancelTimer(name);
      this.#setState(name, "stopped");
      patchRuntime(this.#k.store, name, { lastExit: `restart cancelled by ${doing}` });
      return this.#show(name);
    }
    throw new UserError(`Cannot ${doing} ${name}: it is ${inst.state}`, {
      hint: `see \`instance show ${name}\``,
      code: "not-running",
    });
  }

  #cancelTimer(name: string): void {
    const t = this.#timers.get(name);
    if (t !== undefined) clearTimeout(t);
    this.#timers.delete(name);
  }

  /** Keeps every attached guest's serial log within its bound (copy, then truncate). */
  /**
   * No timer while no guest runs: an idle appliance wakes kattach for nothing otherwise (under TCG
   * every wake-up of the emulated machine costs).
   */
  #stopRotation(): void {
    clearInterval(this.#rotation);
    this.#rotation = undefined;
  }

  async #rotateLogs(): Promise<void> {
    if (this.#guests.size === 0) return this.#stopRotation();
    if (this.#rotating) return;
    this.#rotating = true;
    try {
      for (const g of this.#guests.values()) {
        const size = await rotateAppendLog(g.paths.serialLog, { maxBytes: SERIAL_LOG_MAX_BYTES })
          .catch((err) => {
            this.#k.log(`supervisor: ${g.name}: rotating the serial log: ${message(err)}`);
            return 0;
          });
        if (size > 0 && !this.#rotatedOnce.has(g.name)) {
          this.#rotatedOnce.add(g.name);
          this.#k.log(
            `supervisor: ${g.name}: serial log rotated at ${size} bytes (later rotations not logged)`,
          );
        }
      }
    } finally {
      this.#rotating = false;
    }
  }

  /**
   * Group commit (kattach/group_commit.ts). `durable: false` for the facts of a start (its state,
   * pid, health): a power loss makes them moot; how a guest ended (an operator's stop included)
   * waits for the disk.
   */
  #commit(write: () => void, o: { durable: boolean }): Promise<void> {
    return this.#writes.commit(write, o);
  }

  #beginPending(name: string): PendingStart {
    const { promise, resolve } = Promise.withResolvers<Guest | null>();
    const p: PendingStart = {
      pid: null,
      exited: false,
      cancelled: null,
      attached: promise,
      settle: resolve,
    };
    this.#pending.set(name, p);
    return p;
  }

  #endPending(name: string, guest: Guest | null): void {
    const p = this.#pending.get(name);
    if (!p) return;
    this.#pending.delete(name);
    p.settle(guest);
  }

  /** A start the host's shutdown ended: the instance is `stopped`, its last exit says why. */
  #cancelStart(name: string, why: string): void {
    this.#k.store.tx(() => {
      this.#setState(name, "stopped");
      patchRuntime(this.#k.store, name, { pid: null, lastExit: why });
    });
    this.#k.log(`supervisor: ${name}: ${why}`);
  }

  /**
   * A start that failed: the instance is `failed` with the reason, in one transaction; what
   * starts remember of their files and grants is forgotten (the next start looks again).
   */
  #failStart(name: string, why: string): void {
    forgetLaunchFacts();
    this.#k.store.tx(() => {
      this.#setState(name, "failed");
      patchRuntime(this.#k.store, name, { pid: null, lastExit: why });
    });
    this.#k.log(`supervisor: ${name}: ${why}`);
  }

  #setState(name: string, state: Instance["state"]): void {
    if (this.#k.store.instanceExists(name)) this.#k.store.setInstanceState(name, state);
  }

  #show(name: string): Instance {
    return withRuntime(this.#k, resolveInstance(this.#k.store, name));
  }

  /** Tracks background work; a rejection is logged as a bug, never left unhandled. */
  #spawnBackground(p: Promise<unknown>, what = "background work"): void {
    const tracked = p.catch((err) =>
      this.#k.log(`supervisor: bug in ${what}: ${err instanceof Error ? err.stack : err}`)
    );
    this.#background.add(tracked);
    tracked.finally(() => this.#background.delete(tracked));
  }

  async #locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(name) ?? Promise.resolve();
    const run = prev.catch(() => {}).then(fn);
    this.#locks.set(name, run);
    try {
      return await run;
    } finally {
      if (this.#locks.get(name) === run) this.#locks.delete(name);
    }
  }
}

/** An instance with its runtime details (pid, forwards, health, restarts) filled in. */
export function withRuntime(k: Kattach, inst: Instance): Instance {
  const rt = getRuntime(k.store, inst.name);
  const health = instanceHealth(k.store, inst.name).map((h) => ({
    module: h.module,
    status: h.status,
    detail: h.detail,
    checkedAt: h.checkedAt,
  }));
  return {
    ...withNicAddresses(k, [inst])[0],
    pid: supervisors.get(k)?.pidOf(inst.name) ?? null,
    forwards: rt.forwards,
    health,
    restarts: rt.restarts,
    lastExit: rt.lastExit,
    storage: instanceStorage(k.store, inst.name),
  };
}

/**
 * {@linkcode withRuntime} for many instances: two queries (runtime records, health) for all of
 * them instead of two per instance. It fills in the fields of the given objects (the callers'
 * own, just read from the store) rather than copying 10,000 of them (issue 13). Up to `few`
 * instances (a deploy's answer) read their own rows only, not every instance's.
 */
export function withRuntimes(k: Kattach, insts: Instance[], few = FEW): Instance[] {
  const { where, params } = someOrAll(insts.map((i) => i.name), few);
  const runtime = new Map<string, { forwards: Forward[]; restarts: number; lastExit: string }>();
  for (
    const r of k.store.all(
      `SELECT instance, forwards, restarts, last_exit FROM instance_runtime${where("instance")}`,
      params,
    )
  ) {
    runtime.set(String(r.instance), {
      forwards: JSON.parse(String(r.forwards)),
      restarts: Number(r.restarts),
      lastExit: String(r.last_exit),
    });
  }
  const health = new Map<string, ModuleHealth[]>();
  for (
    const h of k.store.all(
      `SELECT * FROM instance_health${where("instance")} ORDER BY instance, module`,
      params,
    )
  ) {
    const name = String(h.instance);
    let list = health.get(name);
    if (!list) health.set(name, list = []);
    list.push({
      module: String(h.module),
      status: h.status as ModuleHealth["status"],
      detail: String(h.detail),
      checkedAt: String(h.checked_at),
    });
  }
  const sup = supervisors.get(k);
  const storage = instanceStorages(k.store, insts.length <= few ? insts.map((i) => i.name) : null);
  for (const inst of insts) {
    const rt = runtime.get(inst.name);
    inst.pid = sup?.pidOf(inst.name) ?? null;
    inst.forwards = rt?.forwards ?? [];
    inst.health = health.get(inst.name) ?? [];
    inst.restarts = rt?.restarts ?? 0;
    inst.lastExit = rt?.lastExit ?? "";
    inst.storage = storage.get(inst.name) ?? null;
  }
  return withNicAddresses(k, insts, few);
}

/** Up to this many instances, queries name them (`IN`); more read the whole table once. */
const FEW = 64;

/** A `WHERE column IN (…)` naming `names` when they are few, else no condition (every row). */
function someOrAll(names: string[], few: number): {
  where: (column: string) => string;
  params: string[];
} {
  if (names.length > few) return { where: () => "", params: [] };
  return {
    where: (column) => ` WHERE ${column} IN (SELECT value FROM json_each(?))`,
    params: [JSON.stringify(names)],
  };
}

/** The QEMU pids of a kattach's running guests, by instance name (none without a supervisor). */
export function runningPids(k: Kattach): Map<string, number> {
  return supervisors.get(k)?.pids() ?? new Map();
}

function resolveInstanceSafe(k: Kattach, name: string): Instance | undefined {
  return k.store.getInstance(name);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A QEMU that ended before its first QMP exchange. */
class QemuExited extends Error {
  constructor(readonly end: ProcessEnd) {
    super(`QEMU ended (${describeEnd(end)})`);
  }
}

function describeEnd(end: ProcessEnd): string {
  return end.signal ? `signal ${end.signal}` : `exit code ${end.code}`;
}

/** SIGKILL to a pid; a process already gone is no error. */
function killPid(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
}

/** The error of a start refused or cancelled because the host or kattach is going down. */
function closed(name: string, why: string): UserError {
  return new UserError(`Cannot start ${name}: ${why}`, { code: "conflict" });
}

/** `p`'s value if it settles within `ms`, else undefined (a rejection counts as null). */
async function valueWithin<T>(p: Promise<T>, ms: number): Promise<T | null | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), Math.max(0, ms)));
  try {
    return await Promise.race([p.catch(() => null), t]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A file's size in bytes, 0 when it cannot be looked at (not created yet). */
function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

/** Whether the guest printed {@linkcode GUEST_POWERING_OFF_MARKER} since the tail's last read. */
function poweringOff(serial: LogTail): boolean {
  if (!serial.changed()) return false;
  try {
    return serial.find((l) => l.includes(GUEST_POWERING_OFF_MARKER)) !== undefined;
  } catch {
    return false; // no serial log: the guest has printed nothing
  }
}

async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<false>((r) => timer = setTimeout(() => r(false), ms));
  try {
    return await Promise.race([p.then(() => true), t]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits for both `first` and `then` to settle (neither is left running behind a failure);
 * throws `first`'s error, else `then`'s, else gives `then`'s value.
 */
async function bothOrFirstError<T>(first: Promise<unknown>, then: Promise<T>): Promise<T> {
  const [a, b] = await Promise.allSettled([first, then]);
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
  return b.value;
}
