/**
 * kattach's start: a named list of phases, then supervised services (STYLE rule 12). In hosted
 * mode it runs as an ordinary process with all state under one directory; as PID 1 (appliance
 * mode) it never exits: a failing phase is logged and skipped, signals never kill it.
 */
import {
  type DataDiskStatus,
  type Dispatch,
  type IpcServer,
  type NetworkMode,
  serveIpc,
} from "../ipc/mod.ts";
import { type NftHost, probeAccel, realNetlink, realNft } from "../host/mod.ts";
import { KATTACH_V8_FLAGS, KATTACH_V8_FLAGS_OPTION, UserError, v8FlagsInUse } from "../lib/mod.ts";
import { CLI_USER } from "./auth.ts";
import { resetToDefaultPassword } from "./store_auth.ts";
import { getQueue, insertQueue, updateQueue } from "./store_appqueue.ts";
import {
  dispatchAction,
  type Kattach,
  reconcileModuleDirs,
  setConfigChangeApplier,
  setModuleActionRunner,
} from "./actions/mod.ts";
import { applyConfigChange, runModuleAction } from "./module_agent.ts";
import { bootFirewall, stopFirewall } from "./firewall.ts";
import { LogBook } from "./log.ts";
import {
  idleMemory,
  keepMallocEnvToSelf,
  limitMallocArenas,
  onIdleMemory,
} from "../lib/idle_memory.ts";
import { Services } from "./services.ts";
import { applyNetwork, startNetwork } from "./network.ts";
import { mountAllStorage } from "./storage.ts";
import { Store } from "./store.ts";
import { Supervisor } from "./supervisor.ts";

/** Options of {@linkcode startKattach}. */
export interface KattachOptions {
  mode: "hosted" | "appliance";
  /** The state directory; a relative one is taken from the current directory. */
  stateDir: string;
  log?: (line: string) => void;
  /** Port of the supervised sshd (default 1289; 0: no sshd). */
  sshPort?: number;
  /** The command that runs main.ts (e.g. [deno, "run", "-A", main.ts]); no services without it. */
  selfArgv?: string[];
  /**
   * The command that runs the console, given `console --state DIR --tty NAME --wait-key` (default
   * selfArgv; the appliance: its own bundle /kaos/console.js, issue 13: memory).
   */
  consoleSelfArgv?: string[];
  /** The command that runs the sshd, given `sshd …` (default selfArgv; hosted: the front-ends' flags). */
  sshdSelfArgv?: string[];
  /** The appliance's data partition as found; `failed` makes the store refuse every change. */
  dataDisk?: DataDiskStatus;
  /** Put the release's default password back in force (kernel command line, appliance). */
  resetPassword?: boolean;
  /** Read-only queues the image carries (the built-in `local`), kept as given at every start. */
  builtinQueues?: BuiltinQueue[];
  /**
   * `bridged`: kattach manages the host's networking (links, firewall), as on the appliance (the
   * default there); `user` (the hosted default): guests use user-mode NICs and the host's
   * ruleset is never touched. Hosted `bridged` is meant for a network namespace of its own.
   */
  network?: NetworkMode;
  /** nftables (default: the real `nft`); tests pass a fake. */
  nft?: NftHost;
  /** kattach's log (the appliance makes its own); default: one whose sink is `log`. */
  logBook?: LogBook;
  /** Hosted mode: the only disks `storage` may use (e.g. loop devices of a test). */
  storageDisks?: string[];
  /**
   * Appliance: the sshd already runs (kattach/pid1.ts starts it with {@linkcode startSshdService}
   * before its pre-phases, waiting for its go) in these services; `sshdGo` is called once the
   * firewall phase has run. Without them, kattach starts the sshd itself as its first phase.
   */
  early?: { services: Services; sshdGo: () => void };
  /** Appliance: the terminals the console menus run on (default tty1 only). */
  consoleTtys?: string[];
  /** Appliance: called just before the console menus start (the log leaves their terminals). */
  beforeConsoles?: () => void;
  /** Appliance: resolves once QEMU is in place (the second archive); instance starts wait. */
  guestRuntime?: () => Promise<void>;
}

/** A queue the image carries. */
export interface BuiltinQueue {
  name: string;
  url: string;
  publicKey: string;
}

/** A running kattach. */
export interface RunningKattach {
  k: Kattach;
  ipc: IpcServer;
  /** Stops services and closes the store (hosted mode only). */
  stop(): Promise<void>;
}

/** One step of the start sequence. */
interface Phase {
  name: string;
  /** A fatal phase aborts the start in hosted mode; in appliance mode it is retried later. */
  fatal: boolean;
  run(): Promise<void> | void;
}

/** Runs the phases in order and returns the running kattach. */
export async function startKattach(options: KattachOptions): Promise<RunningKattach> {
  const book = options.logBook ??
    new LogBook({ sinks: [options.log ?? ((line: string) => console.error(`kattach: ${line}`))] });
  const log = (line: string) => book.write(line);
  // One malloc arena (lib/idle_memory.ts: without it kattach's RSS crept up over a burst of
  // requests in per-thread arenas): the launcher's environment set it for the whole process; a
  // kattach started without it caps the threads that start from here on. Its children (QEMU, the
  // services) start with glibc's defaults.
  limitMallocArenas(1);
  keepMallocEnvToSelf();
  // Absolute from here on: instance overlays name their module image by this path (a qcow2
  // backing file must be absolute), and the services it spawns may run elsewhere.
  const stateDir = absolutePath(options.stateDir);
  let store: Store | undefined;
  let k: Kattach | undefined;
  let ipc: IpcServer | undefined;
  let services: Services | undefined = options.early?.services;
  let supervisor: Supervisor | undefined;
  // The sshd starts first and waits; it reads its host keys and listens once the firewall is in.
  let firewallIn = () => {};
  const firewallDone = new Promise<void>((resolve) => firewallIn = resolve);

  const phases: Phase[] = [
    {
      name: "sshd",
      fatal: false,
      run() {
        const self = options.selfArgv && (options.sshdSelfArgv ?? options.selfArgv);
        const port = options.sshPort ?? 1289;
        if (!self || port === 0 || options.early) return;
        services ??= new Services({ log });
        // Hosted: loopback only, unless kattach runs bridged (in a network namespace of its own).
        const bridged = (options.network ?? (options.mode === "appliance" ? "bridged" : "user")) ===
          "bridged";
        startSshdService(services, {
          argv: [...self, "sshd"],
          stateDir,
          port,
          listen: options.mode === "hosted" && !bridged ? "127.0.0.1" : "0.0.0.0",
          goWhen: firewallDone,
        });
      },
    },
    {
      name: "state-dir",
      fatal: true,
      async run() {
        await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
        await refuseSecondKattach(`${stateDir}/run`);
        if (book.file === "") book.open(`${stateDir}/log`);
      },
    },
    {
      name: "config-store",
      fatal: true,
      run() {
        store = Store.open(`${stateDir}/kaos.db`);
        const check = store.integrityCheck();
        log(
          `config store open (schema ${store.schemaVersion()}, integrity ${check.integrity}); checked in ${check.durationMs} ms`,
        );
      },
    },
    {
      name: "accel",
      fatal: false,
      run() {
        const accel = probeAccel();
        const bridged = (options.network ?? (options.mode === "appliance" ? "bridged" : "user")) ===
          "bridged";
        k = {
          store: store!,
          stateDir,
          mode: options.mode,
          startedAt: Date.now(),
          accel,
          log,
          dataDisk: options.dataDisk,
          builtinQueues: (options.builtinQueues ?? []).map((q) => q.name),
          firewallHost: bridged
            ? {
              nft: options.nft ?? realNft(),
              mgmtPort: options.sshPort || 1289,
              onUplinkRestored: (reason) => applyNetwork(k!, { reason }),
            }
            : undefined,
          logBook: book,
          ...(options.storageDisks ? { storageDisks: options.storageDisks } : {}),
          ...(options.guestRuntime ? { guestRuntime: options.guestRuntime } : {}),
        };
        log(`${accel.kind}: ${accel.reason}`);
      },
    },
    {
      name: "builtin-queues",
      fatal: false,
      run() {
        for (const q of options.builtinQueues ?? []) {
          store!.tx(() => {
            const had = getQueue(store!, q.name);
            if (!had) insertQueue(store!, { ...q, subscription: false });
            else if (had.url !== q.url || had.publicKey !== q.publicKey || had.subscription) {
              updateQueue(store!, q.name, { ...q, subscription: false });
            }
          });
          log(`appqueue: built-in queue ${q.name} (${q.url}, read-only)`);
        }
      },
    },
    {
      name: "reset-password",
      fatal: false,
      run() {
        if (!options.resetPassword) return;
        resetToDefaultPassword(store!, CLI_USER);
        log(
          `the ${CLI_USER} password is the release default again (boot entry "resetting the ` +
            `${CLI_USER} password"); it must be changed at the next login`,
        );
      },
    },
    {
      name: "data-disk-guard",
      fatal: false,
      run() {
        const disk = options.dataDisk;
        if (disk?.state !== "failed") return;
        store!.refuseWrites(
          new UserError(`Cannot change anything: ${disk.detail}`, {
            hint: "repair the data partition (e2fsck) or replace the stick, then reboot; " +
              "`system status` shows the problem",
            code: "data-disk-failed",
          }),
        );
        log(`the configuration store refuses changes: ${disk.detail}`);
      },
    },
    {
      // Before the links, the guests and the SSH service: nothing is reachable unfiltered.
      name: "firewall",
      fatal: false,
      async run() {
        try {
          await bootFirewall(k!);
        } finally {
          firewallIn(); // the sshd listens from here on (as before, also when this failed)
          options.early?.sshdGo();
        }
      },
    },
    {
      name: "reconcile-modules",
      fatal: false,
      async run() {
        for (const path of await reconcileModuleDirs(store!, stateDir)) {
          log(`removed leftover ${path}`);
        }
      },
    },
    {
      // Before guests (their taps) and services: links first; the firewall follows them.
      name: "network",
      fatal: false,
      async run() {
        const mode = options.network ?? (options.mode === "appliance" ? "bridged" : "user");
        startNetwork(k!, { mode, host: realNetlink({ cache: true }) });
        if (mode === "user") {
          log("network: user-mode (host links are not managed)");
          return;
        }
        const r = await applyNetwork(k!, { reason: "boot" });
        if (r.error) throw new Error(r.error);
        log(`network: bridged, ${r.applied.length} change(s) at boot`);
      },
    },
    {
      name: "storage",
      fatal: false,
      async run() {
        const missing = await mountAllStorage(k!);
        if (missing.length > 0) {
          log(`storage missing: ${missing.join(", ")} (their instances cannot start)`);
        }
      },
    },
    {
      name: "guests",
      fatal: false,
      async run() {
        supervisor = new Supervisor(k!);
        // The supervisor is a lower layer than the action handlers: they get its agent host
        // here (module commands and configuration changes reach guests through it).
        const host = supervisor.agentHost();
        setModuleActionRunner((kk, req) => runModuleAction(kk, host, req));
        setConfigChangeApplier((kk, group) => applyConfigChange(kk, host, group));
        await supervisor.resume(); // re-attach to running QEMUs, then autostart
      },
    },
    {
      name: "ipc",
      fatal: true,
      async run() {
        const dispatch: Dispatch = (action, params, ctx) => dispatchAction(k!, action, params, ctx);
        ipc = await serveIpc({ runDir: `${stateDir}/run`, dispatch, log });
        log(`listening on ${ipc.socketPath}`);
      },
    },
    {
      name: "consoles",
      fatal: false,
      run() {
        const self = options.selfArgv && (options.consoleSelfArgv ?? options.selfArgv);
        if (!self) return;
        services ??= new Services({ log });
        if (options.mode === "appliance") {
          options.beforeConsoles?.();
          for (const tty of options.consoleTtys ?? ["tty1"]) {
            services.start({
              name: `console-${tty}`,
              argv: consoleArgv(self, { tty, stateDir }),
              stdio: "inherit",
              env: { TERM: /^tty\d/.test(tty) ? "linux" : "vt220" },
              cleanExitRestartMs: 200,
            });
          }
        }
      },
    },
  ];

  const flags = v8FlagsInUse();
  log(
    flags.includes(KATTACH_V8_FLAGS_OPTION)
      ? `V8 flags: ${KATTACH_V8_FLAGS.join(" ")}`
      : `V8 flags: ${
        flags.join(" ") || "none"
      }, not ${KATTACH_V8_FLAGS_OPTION} (lib/v8_flags.ts): its heap grows further`,
  );
  const timings: string[] = [];
  const t0 = performance.now();
  for (const phase of phases) {
    const start = performance.now();
    try {
      await phase.run();
      timings.push(`${phase.name} ${Math.round(performance.now() - start)}`);
    } catch (err) {
      log(`phase ${phase.name} failed: ${err instanceof Error ? err.message : err}`);
      if (phase.fatal) {
        await services?.stop(); // the sshd, started before the ipc phase
        store?.close();
        throw err;
      }
    }
  }
  log(`started in ${Math.round(performance.now() - t0)} ms (phases, ms: ${timings.join(", ")})`);
  // Once quiet, the idle-time reducer gives SQLite's page cache back too (before its GC and trim).
  const offIdle = store ? onIdleMemory(() => store?.releaseMemory()) : () => {};
  idleMemory().touch(); // what the start freed (store open, integrity check, reconcile) goes back

  return {
    k: k!,
    ipc: ipc!,
    async stop() {
      if (k) stopFirewall(k);
      await services?.stop();
      await ipc?.close();
      await supervisor?.detach(); // guests keep running; the next start re-attaches
      offIdle();
      store?.close();
      if (!options.logBook) book.close();
    },
  };
}

/**
 * Starts the supervised sshd (`--wait-go`): it starts at once and waits; it reads its host keys
 * (the state directory must be mounted) and listens once `goWhen` settles (the firewall is in).
 */
export function startSshdService(
  services: Services,
  o: { argv: string[]; stateDir: string; port: number; listen: string; goWhen: Promise<void> },
): void {
  services.start({
    name: "sshd",
    argv: [
      ...o.argv,
      ...["--supervised", "--wait-go", "--state", o.stateDir],
      ...["--port", String(o.port), "--listen", o.listen],
    ],
    stdio: "parent-pipe",
    goWhen: o.goWhen,
  });
}

/**
 * The console service on one terminal: a new session with the terminal as its controlling tty
 * and its stdin/stdout/stderr (busybox `setsid -c`), so the menus own that terminal. It waits for a
 * key before it loads the login and menus (`--wait-key`: an idle console holds less memory).
 */
export function consoleArgv(self: string[], options: { tty: string; stateDir: string }): string[] {
  const dev = `/dev/${options.tty}`;
  return [
    "/bin/sh",
    "-c",
    `exec setsid -c "$@" <>${dev} >&0 2>&0`,
    "sh",
    ...self,
    ...["console", "--state", options.stateDir, "--tty", options.tty, "--wait-key"],
  ];
}

async function refuseSecondKattach(runDir: string): Promise<void> {
  try {
    const conn = await Deno.connect({ transport: "unix", path: `${runDir}/kattach.sock` });
    conn.close();
  } catch {
    return; // nobody listens: the socket (if any) is stale
  }
  throw new Error(`another kattach is running on ${runDir}`);
}

/**
 * node:path's `resolve(path)` for one path: absolute (from the working directory), `.` and `..`
 * resolved, no trailing `/`. Not node:path itself: importing it loads Deno's Node layer, about
 * 1 MiB of RSS that kattach idle otherwise never loads (issue 13: memory).
 */
export function absolutePath(path: string): string {
  const parts: string[] = [];
  for (const part of (path.startsWith("/") ? path : `${Deno.cwd()}/${path}`).split("/")) {
    if (part === "..") parts.pop();
    else if (part !== "" && part !== ".") parts.push(part);
  }
  return `/${parts.join("/")}`;
}
