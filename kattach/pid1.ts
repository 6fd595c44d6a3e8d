/**
 * kattach as PID 1 of the appliance (STYLE rule 12): the pre-phases that turn a bare initramfs
 * into a host (mounts, kernel modules, network, the data disk), then the normal kattach phases
 * with stateDir=/var/lib/kaos. PID 1 never exits: signals are logged and ignored, orphans are
 * reaped, bugs are logged, and a fatal start error syncs and reboots.
 *
 * The kernel starts /sbin/kattach (buildroot/appliance/kattach_launcher.c), which mounts /proc,
 * /sys and /dev (deno cannot start without /proc) and execs `deno run … /kaos/kaos.js kattach`.
 */
import {
  mountOnce,
  Reaper,
  runChecked,
  type RunCommand,
  runCommand,
  spawnOwned,
} from "../host/mod.ts";
import type { DataDiskStatus } from "../ipc/mod.ts";
import { FRONT_END_V8_FLAGS_OPTION, KATTACH_V8_FLAGS_OPTION, UserError } from "../lib/mod.ts";
import { type BuiltinQueue, startKattach, startSshdService } from "./boot.ts";
import { Services } from "./services.ts";
import { mountDataDisk } from "./data_disk.ts";
import { tcpListening, unpackLateArchive } from "./late_archive.ts";
import { LogBook } from "./log.ts";

/** Where the appliance keeps its state (the data disk is mounted here). */
export const APPLIANCE_STATE_DIR = "/var/lib/kaos";
/** The port of the appliance's SSH CLI. */
const APPLIANCE_SSH_PORT = 1289;
/** The ext4 label of the appliance's data disk. */
export const DATA_DISK_LABEL = "KAOSDATA";
/** How long the data-disk phase waits for the label to appear (a USB stick enumerates late). */
const DATA_DISK_WAIT_MS = 10_000;
/** How long the guest runtime's unpacking waits for the SSH service to listen. */
const LATE_AFTER_SSHD_WAIT_MS = 60_000;
/** Extra `kaos.*` words from QEMU (`-fw_cfg name=opt/kaos/cmdline,string=…`). */
const FW_CFG_CMDLINE = "/sys/firmware/qemu_fw_cfg/by_name/opt/kaos/cmdline/raw";
/** The queues the image carries (scripts/build-image writes it beside the queue `local`). */
const BUILTIN_QUEUES_FILE = "/kaos/appqueue/builtin.json";

/** What the kernel command line asks of kattach (`kaos.*` parameters). */
export interface ApplianceCmdline {
  /** Static eth0 address with prefix (`kaos.ip=10.0.2.15/24`); DHCP when absent. */
  ip?: string;
  /** Default gateway for the static address (`kaos.gw=10.0.2.2`). */
  gw?: string;
  /** `kaos.selftest=signals`: after start, send PID 1 signals and make an orphan (image tests). */
  selftest?: string;
  /** `kaos.console=serial`: the boot entry with the menus on the serial console. */
  console?: string;
  /** `kaos.reset-password=1`: the boot entry that puts the release's default password back. */
  "reset-password"?: string;
}

/** Parses the `kaos.*` parameters of a kernel command line. */
export function parseCmdline(text: string): ApplianceCmdline {
  const out: ApplianceCmdline = {};
  for (const word of text.trim().split(/\s+/)) {
    const m = word.match(/^kaos\.(ip|gw|selftest|console|reset-password)=(.+)$/);
    if (m) out[m[1] as keyof ApplianceCmdline] = m[2];
  }
  return out;
}

/**
 * Where the console menus run: always on tty1 (the physical console), and on ttyS0 too when the
 * kernel command line says `kaos.console=serial` (the image's serial-console boot entry).
 */
export function menuTerminals(cmdline: string): string[] {
  return /(^|\s)kaos\.console=serial(\s|$)/.test(cmdline) ? ["tty1", "ttyS0"] : ["tty1"];
}

/**
 * The appliance's log sinks: /dev/console until the menus own the terminals (the image's boot
 * entries make it the serial port), then the serial port when no menu runs there. Not both at
 * once: each early line showed twice on the serial console. (The file is the LogBook's.)
 */
function applianceLogSinks(): {
  sinks: ((line: string) => void)[];
  menusStarted(menus: string[]): void;
} {
  let consoleOpen = true;
  const enc = new TextEncoder();
  let serial: Deno.FsFile | undefined;
  return {
    sinks: [
      (line) => {
        if (consoleOpen) console.error(`kattach: ${line}`);
      },
      (line) => {
        serial?.writeSync(enc.encode(`kattach: ${line}\r\n`));
      },
    ],
    menusStarted(menus) {
      consoleOpen = false;
      if (menus.includes("ttyS0")) return;
      try {
        serial = Deno.openSync("/dev/ttyS0", { write: true });
      } catch { /* no serial port on this PC */ }
    },
  };
}

/** One appliance pre-phase: failures are logged and the boot goes on. */
interface PrePhase {
  name: string;
  run(): Promise<void>;
}

/** Options of {@linkcode runAppliance}. */
export interface ApplianceOptions {
  log?: (line: string) => void;
  run?: RunCommand;
}

/**
 * How the appliance runs its own program again (kattach's supervised services use it): with
 * kattach's V8 flags, under which the image build warmed kaos.js' code cache.
 */
export const APPLIANCE_SELF_ARGV = [
  "/bin/deno",
  ...["run", "-A", "--cached-only", "--no-config", KATTACH_V8_FLAGS_OPTION, "/kaos/kaos.js"],
];

/**
 * How the appliance runs its sshd: its own bundle of sshd_main.ts (CLI, IPC client, SSH server;
 * no store, QEMU or network code), with its code cache filled at build time under the same V8
 * flags, the front-ends' (lib/v8_flags.ts; V8 refuses a cache made under other flags).
 */
export const APPLIANCE_SSHD_ARGV = [
  "/bin/deno",
  ...["run", "-A", "--cached-only", "--no-config", FRONT_END_V8_FLAGS_OPTION, "/kaos/sshd.js"],
];

/**
 * How the appliance runs its consoles: their own bundle of console_main.ts (the terminal until a
 * key is pressed; the login, menus and IPC client then: buildroot/appliance/bundle-front-ends).
 */
export const APPLIANCE_CONSOLE_ARGV = [
  "/bin/deno",
  ...["run", "-A", "--cached-only", "--no-config", FRONT_END_V8_FLAGS_OPTION, "/kaos/console.js"],
];

/** PID 1's main: pre-phases, kattach's phases, then stays alive forever. */
export async function runAppliance(options: ApplianceOptions = {}): Promise<void> {
  const t0 = performance.now();
  const cmdlineText = await readText("/proc/cmdline");
  let menus = menuTerminals(cmdlineText); // and fw_cfg's words, below
  const out = applianceLogSinks();
  const book = new LogBook({
    sinks: options.log ? [options.log] : out.sinks,
  });
  const log = (line: string) => book.write(line);
  if (Deno.pid !== 1) {
    throw new UserError("kattach --appliance runs only as PID 1", {
      hint: "on a development machine run `main.ts kattach --hosted`",
    });
  }
  const run = options.run ?? runCommand;
  keepAlive(log);
  const up = (await readText("/proc/uptime")).split(" ")[0];
  log(`PID ${Deno.pid}: deno ${Deno.version.deno}, appliance mode (uptime ${up} s)`);

  // The sshd's Deno starts once the first modules are in, beside the data-disk phase (mostly a
  // wait for the stick): it reads its host keys and listens only after its go, which kattach's
  // firewall phase gives (after the data partition is mounted).
  const services = new Services({ log });
  let sshdGo = () => {};
  let sshdStarted = false;
  const startSshd = () => {
    if (sshdStarted) return;
    sshdStarted = true;
    startSshdService(services, {
      argv: APPLIANCE_SSHD_ARGV,
      stateDir: APPLIANCE_STATE_DIR,
      port: APPLIANCE_SSH_PORT,
      listen: "0.0.0.0",
      goWhen: new Promise<void>((resolve) => sshdGo = resolve),
    });
  };

  // The second archives (QEMU, the built-in queue: what only guests need) unpack once the SSH
  // service listens and kattach is ready, off the path to both (their vCPU time would slow
  // kattach's last phases under emulation); instance starts wait for them (autostarts run in
  // the background), as does the built-in queue (kattach/late_archive.ts).
  let sshdGoGiven = () => {};
  let kattachReady = () => {};
  const afterSshd = new Promise<void>((resolve) => sshdGoGiven = resolve).then(async () => {
    if (!await waitFor(() => tcpListening(APPLIANCE_SSH_PORT), LATE_AFTER_SSHD_WAIT_MS)) {
      log(`nothing listens on ${APPLIANCE_SSH_PORT} yet; unpacking the guest runtime anyway`);
    }
  });
  const guestRuntime = unpackLateArchive({
    run,
    log,
    when: Promise.all([afterSshd, new Promise<void>((resolve) => kattachReady = resolve)])
      .then(() => {}),
  });
  guestRuntime.catch(() => {}); // logged there; instance starts report it

  let cmdline = parseCmdline(cmdlineText);
  let dataDisk: DataDiskStatus | undefined;
  // What the pre-phases wait for (a stick behind xHCI, eth0, fw_cfg; see EARLY_MODULES) loads
  // alone, then the rest (other disk controllers, nftables, bridges, KVM, …) in the background.
  // (Loaded at once, the two runs slowed each other: the first took 10 s instead of 3.)
  let laterModules: Promise<void> = Promise.resolve();
  const phases: PrePhase[] = [
    { name: "mounts", run: () => earlyMounts(run) },
    { name: "hostname", run: () => runChecked(run, ["hostname", "kaos"]).then(() => {}) },
    {
      name: "kernel-modules",
      run: async () => {
        const names = modulesFor(
          await readText("/kaos/modules.list"),
          await readText("/proc/cpuinfo"),
        );
        const { early, later } = splitModules(names);
        try {
          await loadModules(run, { names: early, log });
        } finally {
          laterModules = loadModules(run, { names: later, log });
          startSshd();
        }
      },
    },
    {
      // Development hook: under QEMU, scripts/run-appliance --append passes kaos.* words through
      // fw_cfg (the image's boot menu fixes the kernel command line). Absent on real hardware.
      name: "cmdline",
      run: async () => {
        const extra = (await readText(FW_CFG_CMDLINE)).trim();
        if (extra === "") return;
        cmdline = parseCmdline(`${cmdlineText} ${extra}`);
        menus = menuTerminals(`${cmdlineText} ${extra}`); // kaos.console=serial too
        log(`kernel command line + fw_cfg: ${extra}`);
      },
    },
    {
      name: "data-disk",
      run: async () => {
        dataDisk = await mountDataDisk({
          run,
          log,
          label: DATA_DISK_LABEL,
          target: APPLIANCE_STATE_DIR,
          waitMs: DATA_DISK_WAIT_MS,
          driversLoading: laterModules,
        });
      },
    },
    // eth0 up and udhcpc started; nothing waits for the lease (it is logged when it comes).
    { name: "network", run: () => bringUpNetwork(run, { cmdline, log }) },
    { name: "kernel-modules-later", run: () => laterModules },
  ];
  for (const phase of phases) {
    const t = performance.now();
    try {
      await phase.run();
      log(`phase ${phase.name} done (${Math.round(performance.now() - t)} ms)`);
    } catch (err) {
      log(`phase ${phase.name} failed: ${err instanceof Error ? err.message : err}`);
    }
  }

  startSshd(); // if the kernel-modules phase did not get to it

  const reaper = new Reaper({ parent: Deno.pid, log });
  reaper.start();

  try {
    await startKattach({
      mode: "appliance",
      stateDir: APPLIANCE_STATE_DIR,
      logBook: book,
      selfArgv: APPLIANCE_SELF_ARGV,
      consoleSelfArgv: APPLIANCE_CONSOLE_ARGV, // the console menus
      sshPort: APPLIANCE_SSH_PORT,
      early: {
        services,
        sshdGo: () => {
          sshdGo();
          sshdGoGiven();
        },
      },
      guestRuntime: () => guestRuntime,
      dataDisk,
      resetPassword: cmdline["reset-password"] === "1",
      builtinQueues: await readBuiltinQueues(log),
      consoleTtys: menus,
      beforeConsoles() {
        // From here the menus own their terminals: kattach's log goes to its file (`system
        // log`) and to the serial port when no menu runs there; the kernel prints only
        // emergencies.
        log(`console menus on ${menus.join(", ")}; log in ${book.file || "memory"}`);
        out.menusStarted(menus);
        run(["dmesg", "-n", "1"]).catch(() => {});
      },
    });
  } catch (err) {
    await fatal(run, log, err);
    return;
  }
  const uptime = (await readText("/proc/uptime")).split(" ")[0];
  log(
    `ready (appliance, state ${APPLIANCE_STATE_DIR}; ` +
      `${Math.round(performance.now() - t0)} ms in kattach, uptime ${uptime} s)`,
  );
  kattachReady();
  if (cmdline.selftest === "signals") await selftestSignals(run, reaper, log);
}

/** Keeps the event loop alive forever and turns signals and stray errors into log lines. */
function keepAlive(log: (line: string) => void): void {
  setInterval(() => {}, 60_000); // PID 1 must never run out of work
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT"] as const) {
    try {
      Deno.addSignalListener(sig, () => log(`received ${sig}; PID 1 ignores it`));
    } catch (err) {
      log(`cannot listen for ${sig}: ${err instanceof Error ? err.message : err}`);
    }
  }
  catchStrayErrors(log);
}

/**
 * Turns stray errors and unhandled rejections into logged bugs instead of an exit: kattach keeps
 * running (the appliance's PID 1 and a hosted kattach alike).
 */
export function catchStrayErrors(log: (line: string) => void): void {
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    const r = e.reason;
    log(`bug (unhandled rejection, kept running): ${r instanceof Error ? r.stack : r}`);
  });
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    log(
      `bug (uncaught error, kept running): ${e.error instanceof Error ? e.error.stack : e.message}`,
    );
  });
}

async function earlyMounts(run: RunCommand): Promise<void> {
  const specs = [
    { source: "proc", target: "/proc", fstype: "proc", options: "nosuid,nodev,noexec" },
    { source: "sysfs", target: "/sys", fstype: "sysfs", options: "nosuid,nodev,noexec" },
    { source: "devtmpfs", target: "/dev", fstype: "devtmpfs", options: "nosuid,mode=0755" },
    {
      source: "devpts",
      target: "/dev/pts",
      fstype: "devpts",
      options: "gid=5,mode=620,ptmxmode=666",
    },
    { source: "tmpfs", target: "/dev/shm", fstype: "tmpfs", options: "nosuid,nodev,mode=1777" },
    { source: "tmpfs", target: "/run", fstype: "tmpfs", options: "nosuid,nodev,mode=0755" },
    { source: "tmpfs", target: "/tmp", fstype: "tmpfs", options: "nosuid,nodev,mode=1777" },
    {
      source: "cgroup2",
      target: "/sys/fs/cgroup",
      fstype: "cgroup2",
      options: "nosuid,nodev,noexec",
    },
  ];
  for (const spec of specs) await mountOnce(spec, { run });
}

/** The modules worth loading on this CPU: KVM's only where the CPU has vmx or svm. */
export function modulesFor(list: string, cpuinfo: string): string[] {
  const flags = cpuinfo.match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/) ?? [];
  const skip = new Set<string>();
  if (!flags.includes("vmx")) skip.add("kvm_intel");
  if (!flags.includes("svm")) skip.add("kvm_amd");
  if (!flags.includes("vmx") && !flags.includes("svm")) skip.add("kvm").add("vhost_net");
  return list.split("\n").map((n) => n.trim()).filter((n) => n !== "" && !skip.has(n));
}

/**
 * The modules the pre-phases wait for: a stick behind xHCI and its file system, eth0 (virtio),
 * fw_cfg and the RNG (host-key generation). The other disk controllers (EHCI/UHCI/OHCI, AHCI,
 * NVMe) load with the rest, at the same time; the data-disk phase keeps looking for its label
 * until they are in.
 */
const EARLY_MODULES = new Set([
  ..."virtio_pci virtio_net virtio_rng crc32c_generic ext4 xhci_pci usb_storage uas".split(" "),
  ..."sd_mod qemu_fw_cfg af_packet".split(" "),
]);

/** Splits a module list into those the pre-phases need and those only kattach's phases need. */
export function splitModules(names: string[]): { early: string[]; later: string[] } {
  return {
    early: names.filter((n) => EARLY_MODULES.has(n)),
    later: names.filter((n) => !EARLY_MODULES.has(n)),
  };
}

async function loadModules(
  run: RunCommand,
  options: { names: string[]; log: (line: string) => void },
): Promise<void> {
  const { names, log } = options;
  if (names.length === 0) return;
  const r = await run(["modprobe", "-a", "-b", ...names]);
  if (r.code !== 0) {
    // One missing module must not cost the others: load them one by one and name the failures.
    const failed: string[] = [];
    for (const name of names) {
      if ((await run(["modprobe", name])).code !== 0) failed.push(name);
    }
    if (failed.length > 0) log(`kernel modules not loaded: ${failed.join(", ")}`);
  }
}

async function bringUpNetwork(
  run: RunCommand,
  options: { cmdline: ApplianceCmdline; log: (line: string) => void },
): Promise<void> {
  await runChecked(run, ["ip", "link", "set", "lo", "up"]);
  if (!await waitFor(() => exists("/sys/class/net/eth0"), 5_000)) {
    throw new Error("no eth0 (is there a network card?)");
  }
  await runChecked(run, ["ip", "link", "set", "eth0", "up"]);
  const { ip, gw } = options.cmdline;
  if (ip) {
    await runChecked(run, ["ip", "addr", "add", ip, "dev", "eth0"]);
    if (gw) await runChecked(run, ["ip", "route", "add", "default", "via", gw]);
    options.log(`eth0 ${ip}${gw ? ` via ${gw}` : ""} (static)`);
    return;
  }
  // udhcpc stays in the foreground as kattach's child and renews the lease.
  const udhcpc = spawnOwned("udhcpc", {
    args: ["-f", "-i", "eth0", "-s", "/usr/share/udhcpc/default.script", "-t", "5", "-T", "1"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  });
  udhcpc.status.then((s) => options.log(`udhcpc exited (code ${s.code})`));
  // Nothing at boot needs the lease (the firewall, the links, the data disk and the SSH service
  // do not): it is logged when it comes, and its absence after a minute too.
  const started = performance.now();
  waitFor(() => eth0Address() !== undefined, DHCP_LOG_WAIT_MS).then((got) => {
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    options.log(
      got
        ? `eth0 ${eth0Address()} (DHCP, ${secs} s after udhcpc started)`
        : `eth0 has no DHCP lease after ${secs} s (udhcpc keeps trying)`,
    );
  });
}

/** How long the lease is watched for a log line (udhcpc keeps trying afterwards). */
const DHCP_LOG_WAIT_MS = 60_000;

/** eth0's IPv4 address with its prefix, or undefined. */
function eth0Address(): string | undefined {
  const a = Deno.networkInterfaces().find((i) => i.name === "eth0" && i.family === "IPv4");
  return a ? a.cidr : undefined;
}

/** A fatal start error: log, sync, and reboot after a delay; never return to a dead loop. */
async function fatal(run: RunCommand, log: (line: string) => void, err: unknown): Promise<void> {
  log(`fatal: ${err instanceof Error ? err.stack : err}`);
  log("syncing and rebooting in 10 s");
  await run(["sync"]).catch(() => {});
  await new Promise((r) => setTimeout(r, 10_000));
  await run(["reboot", "-f"]).catch(() => {});
}

/** Image-test hook: real `kill` processes signal PID 1, and a shell leaves an orphan behind. */
async function selftestSignals(
  run: RunCommand,
  reaper: Reaper,
  log: (line: string) => void,
): Promise<void> {
  log("selftest: signals");
  for (const sig of ["TERM", "HUP", "USR1", "INT"]) {
    const r = await run(["kill", `-${sig}`, "1"]);
    log(`selftest: kill -${sig} 1 exited ${r.code}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await run(["sh", "-c", "sleep 1 & exit 0"]);
  await waitFor(() => reaper.reaped > 0, 10_000);
  const zombies = (await run(["sh", "-c", "grep -l '^[0-9]* (.*) Z' /proc/[0-9]*/stat | wc -l"]))
    .stdout.trim();
  log(
    `selftest: done; PID ${Deno.pid} alive, ${reaper.reaped} orphan(s) reaped, ${zombies} zombie(s)`,
  );
}

/** The image's built-in queues, or none when the image has no such file. */
async function readBuiltinQueues(log: (line: string) => void): Promise<BuiltinQueue[]> {
  const text = await readText(BUILTIN_QUEUES_FILE);
  if (text === "") return [];
  try {
    const q = JSON.parse(text) as Partial<BuiltinQueue>;
    if (
      typeof q.name === "string" && typeof q.url === "string" && typeof q.publicKey === "string"
    ) {
      return [{ name: q.name, url: q.url, publicKey: q.publicKey }];
    }
    log(`${BUILTIN_QUEUES_FILE} lacks name, url or publicKey; no built-in queue`);
  } catch (err) {
    log(`${BUILTIN_QUEUES_FILE} is not JSON (${err}); no built-in queue`);
  }
  return [];
}

async function waitFor(test: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (true) {
    if (await test()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}
