/**
 * What one instance needs on disk before its QEMU starts, under `STATE/instances/<name>/`: the
 * config disk, one qcow2 overlay per app module, the vKaOS kernel and initrd (extracted once per
 * image hash into `STATE/cache/vkaos/`), host port forwards, the machine type, and the rendered
 * argv. Also the process checks the supervisor uses to recognise its own QEMU after a restart.
 */
import { Manifest, resolveConfigValues } from "../appqueue/mod.ts";
import { hostTscKhz, rotateAppendLog } from "../host/mod.ts";
import type { Forward, Instance, Module } from "../ipc/schemas.ts";
import { UserError } from "../lib/errors.ts";
import { readUstar } from "../lib/ustar.ts";
import { type GuestConfig, type GuestModule, renderConfigDisk } from "../vmimage/mod.ts";
import { type Machine, QBOOT_ROM, renderQemuArgv } from "../vmimage/mod.ts";
import type { Kattach } from "./actions/_types.ts";
import { agentDeclarations } from "./module_agent.ts";

/** The unix socket path limit of Linux (sun_path, with its NUL). */
const SUN_PATH_MAX = 107;

/** The runtime files of one instance. */
export interface InstancePaths {
  dir: string;
  qmp: string;
  console: string;
  serialLog: string;
  pidfile: string;
  configDisk: string;
  agent: string;
}

/** Where an instance's runtime files live. */
export function instancePaths(stateDir: string, name: string): InstancePaths {
  const dir = `${stateDir}/instances/${name}`;
  return {
    dir,
    qmp: `${dir}/qmp.sock`,
    console: `${dir}/console.sock`,
    serialLog: `${dir}/serial.log`,
    pidfile: `${dir}/qemu.pid`,
    configDisk: `${dir}/config.raw`,
    agent: `${dir}/agent.sock`,
  };
}

/** Everything `start` needs to spawn QEMU. */
export interface PreparedInstance {
  argv: string[];
  paths: InstancePaths;
  forwards: Forward[];
  /** Bytes already in serial.log (output of earlier boots). */
  serialFrom: number;
  /** Each module with its readiness check: vKaOS first, then the app modules. */
  modules: Module[];
  /** The machine QEMU runs and why (see {@linkcode chooseMachine}). */
  machine: Machine;
  machineWhy: string;
}

/** Options of {@linkcode prepareInstance}. */
export interface PrepareOptions {
  /** The instance's machine setting (`instance set --machine`; microvm unless changed). */
  machine: Machine;
  /** Forwards of the previous boot; their host ports are reused when still free. */
  previousForwards: Forward[];
}

/**
 * The machine an instance runs on: q35 when one of its modules declares `"machine": "q35"` in
 * appmgr.aq (it needs PCI), else the instance's setting: microvm by default, q35 after
 * `instance set NAME --machine q35`.
 */
export function chooseMachine(
  setting: Machine,
  modules: readonly Pick<Module, "name" | "appmgr">[],
): { machine: Machine; why: string } {
  const pci = modules.filter((m) => m.appmgr.machine === "q35").map((m) => m.name);
  if (pci.length > 0) {
    const over = setting === "microvm" ? " (over the instance's microvm setting)" : "";
    return {
      machine: "q35",
      why: `q35: ${pci.join(", ")} need${pci.length === 1 ? "s" : ""} PCI${over}`,
    };
  }
  return setting === "q35"
    ? { machine: "q35", why: "q35: set on the instance" }
    : { machine: "microvm", why: "microvm: no module needs PCI" };
}

let qbootPresent: Promise<boolean> | undefined;

/**
 * Reads the host facts every start needs (qboot installed, the host TSC rate) ahead of the first
 * start, so the first deploy does not wait for them. Safe to call any number of times.
 */
export function warmHostFacts(): void {
  qbootPresent ??= exists(QBOOT_ROM);
  hostTscKhz().catch(() => {});
}

/**
 * Fills the caches every start reads (vKaOS kernel and initrd, one overlay template per app
 * module in a VM image) so the first deploy after kattach starts finds them ready.
 */
export async function warmInstanceCaches(k: Kattach): Promise<void> {
  warmHostFacts();
  const vkaos = k.store.getVkaos();
  if (vkaos) await extractVkaos(k.stateDir, vkaos);
  const used = new Set(k.store.listVmImages().flatMap((i) => i.modules));
  for (const m of k.store.listModules()) {
    if (used.has(m.name)) await overlayTemplate(k.stateDir, m);
  }
}

/** Writes the config disk and overlays, extracts vKaOS and renders the argv. */
export async function prepareInstance(
  k: Kattach,
  inst: Instance,
  options: PrepareOptions,
): Promise<PreparedInstance> {
  const image = k.store.getVmImage(inst.vmimage);
  const vkaos = k.store.getVkaos();
  if (!image || !vkaos) {
    throw new UserError(`Cannot start ${inst.name}: its VM image or vKaOS is gone`, {
      hint: "see `vmimage show` and `module list`",
    });
  }
  const apps = image.modules.map((name) => {
    const m = k.store.getModule(name);
    if (!m) throw new UserError(`Cannot start ${inst.name}: module ${name} is not installed`);
    return m;
  });
  const groups = image.configGroups.map((g) => k.store.getConfigGroup(g)).filter((g) => !!g);
  const paths = instancePaths(k.stateDir, inst.name);
  if (new TextEncoder().encode(paths.console).length > SUN_PATH_MAX) {
    throw new UserError(`Cannot start ${inst.name}: the state directory path is too long`, {
      hint: `unix sockets need paths under ${SUN_PATH_MAX} bytes: ${paths.console}`,
    });
  }
  await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });

  const guestModules: GuestModule[] = apps.map((m) => {
    const group = groups.find((g) => g.module === m.name);
    const config = resolveConfigValues(m.climod, group?.values ?? {}, { module: m.name });
    return {
      name: m.name,
      version: m.version,
      startOrder: m.appmgr.startOrder,
      exec: m.appmgr.service?.exec ?? [],
      config: config as GuestModule["config"],
      ...(agentDeclarations(m) ? { agent: agentDeclarations(m) } : {}),
    };
  });
  const cfg: GuestConfig = {
    instance: inst.name,
    vmimage: inst.vmimage,
    // User-mode NAT for every NIC until VLAN bridges exist: the guest takes slirp's DHCP address;
    // the VLAN id travels along for information.
    nics: inst.nics.map((n) => ({ mac: n.mac, ...(n.vlan === null ? {} : { vlan: n.vlan }) })),
    modules: guestModules,
  };
  const { machine, why } = chooseMachine(options.machine, [vkaos, ...apps]);
  const disks = apps.map((m) => ({ module: m.name, overlay: `${paths.dir}/${m.name}.qcow2` }));
  // Independent steps at once: the qemu-img runs overlap each other and the file work.
  const [kernel, manifest, serialFrom, qboot, tscKhz] = await Promise.all([
    extractVkaos(k.stateDir, vkaos),
    Deno.readTextFile(`${vkaos.dir}/manifest.json`).then((t) => Manifest.parse(JSON.parse(t))),
    // Earlier boots' output past the bound moves to serial.log.1 before QEMU opens the log.
    rotateAppendLog(paths.serialLog).then(() => Deno.stat(paths.serialLog)).then(
      (s) => s.size,
      () => 0,
    ),
    qbootPresent ??= exists(QBOOT_ROM),
    machine === "microvm" && k.accel.kind === "tcg" ? hostTscKhz() : undefined,
    writeAtomic(paths.configDisk, renderConfigDisk(cfg)),
    ...apps.map(async (m, i) => {
      const overlay = disks[i].overlay;
      if (!await exists(overlay)) await copyOverlay(k.stateDir, m, overlay);
    }),
  ]);
  const forwards = allocateForwards(apps, guestModules, options.previousForwards);
  const argv = renderQemuArgv({
    instance: inst.name,
    machine,
    accel: k.accel.kind,
    ...(qboot ? { qboot: QBOOT_ROM } : {}),
    ...(tscKhz ? { hostTscKhz: tscKhz } : {}),
    memoryMiB: image.memoryMiB,
    cpus: image.cpus,
    kernel: kernel.kernel,
    initrd: kernel.initrd,
    kernelCmdline: manifest.kernelCmdline ?? "",
    paths: {
      qmp: paths.qmp,
      console: paths.console,
      serialLog: paths.serialLog,
      pidfile: paths.pidfile,
      configDisk: paths.configDisk,
      agent: paths.agent,
    },
    disks,
    nics: inst.nics.map((n, i) => ({ mac: n.mac, forwards: i === 0 ? forwards : [] })),
  });
  return {
    argv,
    paths,
    forwards,
    serialFrom,
    modules: [vkaos, ...apps],
    machine,
    machineWhy: why,
  };
}

/**
 * The guest ports to forward: each module's tcp/http readiness port and its `port`
 * configuration value when it has one. Host ports are free 127.0.0.1 ports, the previous
 * boot's when they are still free.
 */
function allocateForwards(
  apps: Module[],
  guest: GuestModule[],
  previous: Forward[],
): Forward[] {
  const out: Forward[] = [];
  const add = (module: string, guestPort: number) => {
    if (out.some((f) => f.guestPort === guestPort)) return;
    const old = previous.find((f) => f.guestPort === guestPort && f.module === module);
    const hostPort = old && portFree(old.hostPort) ? old.hostPort : freePort();
    out.push({ hostPort, guestPort, module });
  };
  apps.forEach((m, i) => {
    const r = m.appmgr.readiness;
    if (r.type === "tcp" || r.type === "http") add(m.name, r.port);
    const port = guest[i].config.port;
    if (typeof port === "number" && port >= 1 && port <= 65535) add(m.name, port);
  });
  return out;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function portFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

const templates = new Map<string, Promise<void>>();

/**
 * Gives an instance its copy-on-write overlay over a module image: a copy of an empty overlay
 * made once per module image (hash) under `STATE/cache/overlays/`, so a deploy copies a small
 * file instead of running `qemu-img` per instance. (The backing path is absolute and the same for
 * every instance.)
 */
async function copyOverlay(stateDir: string, m: Module, overlay: string): Promise<void> {
  const template = await overlayTemplate(stateDir, m);
  const tmp = `${overlay}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.copyFile(template, tmp);
  await Deno.rename(tmp, overlay);
}

/** The empty overlay over a module image, made once per image hash; returns its path. */
async function overlayTemplate(stateDir: string, m: Module): Promise<string> {
  const sha = m.files.find((f) => f.part === "image")?.sha256 ?? "unknown";
  const template = `${stateDir}/cache/overlays/${m.name}-${sha.slice(0, 16)}.qcow2`;
  let made = templates.get(template);
  if (!made) {
    made = (async () => {
      if (await exists(template)) return;
      await Deno.mkdir(`${stateDir}/cache/overlays`, { recursive: true, mode: 0o700 });
      await createOverlay(`${m.dir}/${m.name}.aqi`, template);
    })();
    templates.set(template, made);
    made.catch(() => templates.delete(template));
  }
  await made;
  return template;
}

/** `qemu-img create -f qcow2 -b IMAGE -F raw OVERLAY`: a copy-on-write layer over a module image. */
async function createOverlay(image: string, overlay: string): Promise<void> {
  const tmp = `${overlay}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  const out = await new Deno.Command("qemu-img", {
    args: ["create", "-q", "-f", "qcow2", "-b", image, "-F", "raw", tmp],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`qemu-img create ${overlay} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  await Deno.rename(tmp, overlay);
}

/** Extracts the vKaOS kernel and initrd once per image hash; returns their paths. */
export async function extractVkaos(
  stateDir: string,
  vkaos: Module,
): Promise<{ kernel: string; initrd: string }> {
  const sha = vkaos.files.find((f) => f.part === "image")?.sha256 ?? "unknown";
  const dir = `${stateDir}/cache/vkaos/${sha.slice(0, 16)}`;
  const kernel = `${dir}/kernel`;
  const initrd = `${dir}/initrd`;
  if (await exists(kernel) && await exists(initrd)) return { kernel, initrd };
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const parts = readUstar(await Deno.readFile(`${vkaos.dir}/${vkaos.name}.aqi`), {
    label: `${vkaos.name}.aqi`,
  });
  for (const p of parts) {
    if (p.path === "kernel" || p.path === "initrd") await writeAtomic(`${dir}/${p.path}`, p.data);
  }
  return { kernel, initrd };
}

async function writeAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeFile(tmp, data, { mode: 0o600 });
  await Deno.rename(tmp, path);
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** True while a process with this pid exists (and is not a zombie). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** True when `pid` is the QEMU of this instance (its command line names the instance's QMP socket). */
export function isInstanceQemu(pid: number, qmpSocket: string): boolean {
  try {
    const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
    return cmdline.some((a) => a.includes(qmpSocket.replaceAll(",", ",,")));
  } catch {
    return false;
  }
}

/** The pid QEMU wrote to its pidfile, or null. */
export async function readPidfile(path: string): Promise<number | null> {
  const text = await Deno.readTextFile(path).catch(() => "");
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 1 ? pid : null;
}

/** CPU time (seconds) and resident memory (bytes) of a process from /proc. */
export function procStats(pid: number): { cpuSeconds: number; rssBytes: number } | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15, in clock ticks (100/s)
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const rssKb = Number(status.match(/^VmRSS:\s+(\d+)/m)?.[1] ?? 0);
    return { cpuSeconds: ticks / 100, rssBytes: rssKb * 1024 };
  } catch {
    return null;
  }
}

/** Removes an instance's runtime directory (overlays, logs, sockets). */
export async function removeInstanceDir(stateDir: string, name: string): Promise<void> {
  await Deno.remove(instancePaths(stateDir, name).dir, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}
