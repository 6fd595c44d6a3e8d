/**
 * What one instance needs on disk before its QEMU starts, under `STATE/instances/<name>/`: the
 * config disk, one qcow2 overlay per app module, the vKaOS kernel and initrd (extracted once per
 * image hash into `STATE/cache/vkaos/`), host port forwards, the machine type, and the rendered
 * argv. Also the process checks the supervisor uses to recognise its own QEMU after a restart.
 */
import { Manifest, resolveConfigValues } from "../appqueue/mod.ts";
import {
  chownTree,
  ensureGuestUser,
  grantDevice,
  grantGroup,
  grantTraversal,
  hostTscKhz,
  QEMU_USER,
  rotateAppendLog,
  runCommand,
  type UserIds,
} from "../host/mod.ts";
import type { Forward, Instance, Module } from "../ipc/schemas.ts";
import { UserError } from "../lib/errors.ts";
import {
  type GuestConfig,
  type GuestModule,
  renderConfigDisk,
  renderQcow2,
} from "../vmimage/mod.ts";
import {
  guestNics,
  inflatePvhElf,
  type Machine,
  QBOOT_ROM,
  renderQemuArgv,
} from "../vmimage/mod.ts";
import type { Kattach } from "./context.ts";
import { agentDeclarations } from "./module_agent.ts";
import { type GuestNetwork, guestNetwork, netlinkOf } from "./network.ts";
import { requireInstanceRoot } from "./storage.ts";

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

/** Where an instance's runtime files live under `root` (its storage, or the state dir). */
export function instancePaths(root: string, name: string): InstancePaths {
  const dir = `${root}/instances/${name}`;
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
  /** Bytes already in qemu.log (QEMU's output of earlier boots). */
  logFrom: number;
  /** Each module with its readiness check: vKaOS first, then the app modules. */
  modules: Module[];
  /** The machine QEMU runs and why (see {@linkcode chooseMachine}). */
  machine: Machine;
  machineWhy: string;
  /** How each NIC is connected and what the guest was told (addresses, gateway, DNS). */
  network: GuestNetwork;
  /** The user QEMU runs as; null: kattach's own (kattach is not root). */
  user: UserIds | null;
}

/** Options of {@linkcode prepareInstance}. */
export interface PrepareOptions {
  /** The instance's machine setting (`instance set --machine`; microvm unless changed). */
  machine: Machine;
  /** Forwards of the previous boot; their host ports are reused when still free. */
  previousForwards: Forward[];
  /** What the starts of one deploy share (records read, files granted once). */
  shared?: SharedPrep;
}

/**
 * What the starts of one deploy share: its VM image, vKaOS, module and configuration group
 * records, vKaOS' manifest and extracted files, and the grants on the files every guest of the
 * image opens, each read or made once instead of once per instance (issue 13). Made for one
 * deploy and dropped with it, so nothing in it outlives a change.
 */
export class SharedPrep {
  #memo = new Map<string, unknown>();
  #arrived = new Set<string>();
  #expected: number;
  #allArrived = Promise.withResolvers<void>();
  #attached = new Set<string>();
  #allAttached = Promise.withResolvers<void>();
  /** performance.now() when the deploy began: its starts log their steps from there. */
  readonly t0: number;

  /** For the starts of `names` (one deploy), begun at `t0`. */
  constructor(names: string[], t0 = performance.now()) {
    this.t0 = t0;
    this.#expected = new Set(names).size;
    if (this.#expected === 0) {
      this.#allArrived.resolve();
      this.#allAttached.resolve();
    }
  }

  /**
   * The launch gate: `name`'s start has its files ready (or has failed: then it is not waited
   * for); resolves once every start of the deploy is there. The starts then spawn their QEMUs
   * one right after the other, as N bare spawns do, instead of each between the others' file
   * work: a QEMU spawned early boots its guest (TCG: a core's worth of CPU) while kattach still
   * prepares and spawns the rest, and each posix_spawnp blocks kattach's only JS thread until
   * the child is scheduled, which delayed the rest's files (issue 13, bench/deploy.ts N = 20).
   * Calling it again for a name changes nothing.
   */
  arrive(name: string): Promise<void> {
    this.#arrived.add(name);
    if (this.#arrived.size >= this.#expected) this.#allArrived.resolve();
    return this.#allArrived.promise;
  }

  /**
   * `name`'s start is over: its QEMU attached (QMP `running`), or the start failed. Calling it
   * again for a name changes nothing.
   */
  attached(name: string): void {
    this.#attached.add(name);
    if (this.#attached.size >= this.#expected) this.#allAttached.resolve();
  }

  /**
   * Resolves once every start of the deploy is {@linkcode attached}, or `capMs` after the call
   * (one start stuck in its first QMP exchange does not hold the others back for long). The
   * readiness checks of a deploy's guests wait for it: until then the CPU goes to the QEMUs
   * still starting and to kattach starting them, not to probing guests that are still booting
   * (a guest boots for a second or more; issue 13: two serial probes every 50 ms per guest
   * were a quarter of kattach's CPU during a deploy of 20).
   */
  async allAttached(capMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#allAttached.promise,
      new Promise<void>((r) => timer = setTimeout(r, capMs)),
    ]);
    clearTimeout(timer);
  }

  /** `make()`'s value for `key`, made on the first call. */
  once<T>(key: string, make: () => T): T {
    if (!this.#memo.has(key)) this.#memo.set(key, make());
    return this.#memo.get(key) as T;
  }
}

/** Without a {@linkcode SharedPrep}: everything is made for this start alone. */
const unshared = { once: <T>(_key: string, make: () => T): T => make() };

/**
 * What every start reads or grants and what stays the same from one start to the next: the
 * vKaOS files in the cache, vKaOS's manifest, a module image's size, the grants on the paths
 * QEMU shares with every guest. Kept across starts (and deploys), each under a key naming what
 * it depends on (paths and image digests: a module update makes new keys); a start that fails
 * forgets them all ({@linkcode forgetLaunchFacts}), so the next one looks at everything again.
 * Each was a round trip through Deno's thread pool or a parse at every start (issue 13: deploy
 * → QMP running for N = 1).
 */
const launchFacts = new Map<string, Promise<unknown>>();

/** `make()`'s value for `key`, made once and kept; a rejected one is not kept. */
function launchFact<T>(key: string, make: () => Promise<T>): Promise<T> {
  let fact = launchFacts.get(key) as Promise<T> | undefined;
  if (!fact) {
    const made = make();
    fact = made;
    launchFacts.set(key, made);
    made.catch(() => {
      if (launchFacts.get(key) === made) launchFacts.delete(key);
    });
  }
  return fact;
}

/**
 * The vKaOS files of the cache ({@linkcode extractVkaos}), remembered; when one of them is gone
 * (removed behind kattach's back) everything remembered is forgotten and they are made again.
 * Looked at with a stat(2) each, on the JS thread (some 10 µs each).
 */
async function cachedVkaos(stateDir: string, vkaos: Module): Promise<VkaosFiles> {
  const key = `vkaos files ${stateDir} ${imageDigest(vkaos)}`;
  const files = await launchFact(key, () => extractVkaos(stateDir, vkaos));
  const there = (path: string | null) => {
    try {
      return path === null || Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  };
  if (there(files.kernel) && there(files.initrd) && there(files.pvh)) return files;
  forgetLaunchFacts();
  return await launchFact(key, () => extractVkaos(stateDir, vkaos));
}

/** Forgets what starts remembered ({@linkcode launchFact}): after a start failed. */
export function forgetLaunchFacts(): void {
  launchFacts.clear();
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

/**
 * The machine an instance's next start runs on and why (`instance show`, `instance set`), from
 * its setting and its VM image's modules, as {@linkcode prepareInstance} decides.
 */
export function instanceMachine(k: Kattach, inst: Instance, setting: Machine): string {
  const image = k.store.getVmImage(inst.vmimage);
  const modules = [k.store.getVkaos(), ...(image?.modules ?? []).map((n) => k.store.getModule(n))]
    .filter((m) => m !== undefined);
  return chooseMachine(setting, modules).why;
}

let qbootPresent: Promise<boolean> | undefined;

/**
 * Reads the host facts every start needs (qboot installed, the host TSC rate) ahead of the first
 * start, so the first deploy does not wait for them. Safe to call any number of times.
 */
export function warmHostFacts(): void {
  qbootInstalled();
  hostTscKhz().catch(() => {});
}

/**
 * Whether qboot is installed, kept once found; "no" is asked again at the next start (the
 * appliance's QEMU and firmware arrive with its second archive, after kattach started).
 */
function qbootInstalled(): Promise<boolean> {
  const p = qbootPresent ??= exists(QBOOT_ROM);
  p.then((found) => {
    if (!found && qbootPresent === p) qbootPresent = undefined;
  });
  return p;
}

/**
 * Fills the caches every start reads (the vKaOS kernel and initrd) so the first deploy after
 * kattach starts finds them ready.
 */
export async function warmInstanceCaches(k: Kattach): Promise<void> {
  warmHostFacts();
  const vkaos = k.store.getVkaos();
  if (vkaos) await extractVkaos(k.stateDir, vkaos);
}

/** Writes the config disk and overlays, extracts vKaOS and renders the argv. */
export async function prepareInstance(
  k: Kattach,
  inst: Instance,
  options: PrepareOptions,
): Promise<PreparedInstance> {
  const shared = options.shared ?? unshared;
  const image = shared.once(`image ${inst.vmimage}`, () => k.store.getVmImage(inst.vmimage));
  const vkaos = shared.once("vkaos", () => k.store.getVkaos());
  if (!image || !vkaos) {
    throw new UserError(`Cannot start ${inst.name}: its VM image or vKaOS is gone`, {
      hint: "see `vmimage show` and `module list`",
    });
  }
  const apps = image.modules.map((name) => {
    const m = shared.once(`module ${name}`, () => k.store.getModule(name));
    if (!m) throw new UserError(`Cannot start ${inst.name}: module ${name} is not installed`);
    return m;
  });
  const groups = image.configGroups.map((g) =>
    shared.once(`group ${g}`, () => k.store.getConfigGroup(g))
  ).filter((g) => !!g);
  // On the instance's storage (or in the state directory without one); never in RAM.
  const paths = instancePaths(requireInstanceRoot(k, inst.name), inst.name);
  if (new TextEncoder().encode(paths.console).length > SUN_PATH_MAX) {
    throw new UserError(`Cannot start ${inst.name}: the state directory path is too long`, {
      hint: `unix sockets need paths under ${SUN_PATH_MAX} bytes: ${paths.console}`,
    });
  }
  // A directory made just now (a deploy's new instance) holds nothing of an earlier boot: no
  // leftovers to clear, no logs to rotate or measure, no stale overlay to look for. Each of those
  // is an async file operation on kattach's JS thread (issue 13: some 5 ms of it per instance of
  // a deploy of 20, before any QEMU was spawned).
  const fresh = makeInstanceDir(paths.dir);

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
  // Tap NICs (bridged mode, on a VLAN) get their allocated address, the first one the gateway;
  // user-mode NICs slirp's fixed address, statically (the VLAN id travels along for information).
  const network = guestNetwork(k, inst);
  const guestNet = guestNics(network.nics, network.dns);
  const cfg: GuestConfig = {
    instance: inst.name,
    vmimage: inst.vmimage,
    nics: guestNet.nics,
    dns: guestNet.dns,
    modules: guestModules,
    ...(image.dataDiskMiB === null ? {} : { dataMount: dataMount(apps) }),
  };
  const { machine, why } = chooseMachine(options.machine, [vkaos, ...apps]);
  const disks = apps.map((m) => ({ module: m.name, overlay: `${paths.dir}/${overlayName(m)}` }));
  const dataDiskPath = `${paths.dir}/${DATA_DISK_FILE}`;
  // Independent steps at once: the file work overlaps (no process is spawned here).
  const [kernel, manifest, serialFrom, qboot, tscKhz, logFrom] = await Promise.all([
    cachedVkaos(k.stateDir, vkaos),
    launchFact(
      `vkaos manifest ${vkaos.dir} ${imageDigest(vkaos)}`,
      () =>
        Deno.readTextFile(`${vkaos.dir}/manifest.json`).then((t) => Manifest.parse(JSON.parse(t))),
    ),
    // Earlier boots' output past the bound moves to serial.log.1 before QEMU opens the log.
    fresh ? 0 : rotateAppendLog(paths.serialLog).then(() => Deno.stat(paths.serialLog)).then(
      (s) => s.size,
      () => 0,
    ),
    qbootInstalled(),
    machine === "microvm" && k.accel.kind === "tcg" ? hostTscKhz() : undefined,
    fresh ? 0 : Deno.stat(qemuLogPath(paths)).then((s) => s.size, () => 0),
    // In a fresh directory nothing can see a file half written: no temporary file and rename.
    (fresh ? writeNew : writeAtomic)(paths.configDisk, renderConfigDisk(cfg)),
    image.dataDiskMiB === null ? undefined : ensureDataDisk(dataDiskPath, image.dataDiskMiB),
    fresh ? undefined : clearLeftovers(paths),
    // An overlay made over an earlier image of a module (before `module update`) goes: the new
    // one is made over the current image (overlays are keyed by the image's digest).
    fresh
      ? undefined
      : Array.fromAsync(Deno.readDir(paths.dir)).catch(() => []).then((entries) =>
        Promise.all(
          apps.flatMap((m, i) =>
            staleOverlays(entries.map((e) => e.name), m.name, disks[i].overlay.split("/").pop()!)
          ).map((file) => Deno.remove(`${paths.dir}/${file}`).catch(() => {})),
        )
      ),
    ...apps.map(async (m, i) => {
      const overlay = disks[i].overlay;
      if (fresh || !await exists(overlay)) await writeOverlay(m, overlay, { fresh });
    }),
  ]);

  // Forwards ride on the first user-mode NIC; a guest with taps only is reached at its address.
  const userNic = network.nics.find((n) => n.mode === "user");
  const forwards = userNic
    ? allocateForwards(inst.name, apps, guestModules, options.previousForwards)
    : [];
  const vhost = netlinkOf(k)?.vhostNet() ?? false;
  const argv = renderQemuArgv({
    instance: inst.name,
    machine,
    accel: k.accel.kind,
    ...(qboot ? { qboot: QBOOT_ROM } : {}),
    ...(tscKhz ? { hostTscKhz: tscKhz } : {}),
    memoryMiB: image.memoryMiB,
    cpus: image.cpus,
    // microvm enters the kernel's ELF through PVH: no firmware setup, no inflating in the guest.
    kernel: machine === "microvm" && kernel.pvh ? kernel.pvh : kernel.kernel,
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
    // kattach makes the QMP socket and hands it to QEMU listening (supervisor.ts spawnQemu).
    qmpInherited: true,
    disks,
    ...(image.dataDiskMiB === null ? {} : { dataDisk: dataDiskPath }),
    nics: network.nics.map((n) =>
      n.tap
        ? { mac: n.mac, tap: { ifname: n.tap, vhost } }
        : { mac: n.mac, forwards: n === userNic ? forwards : [] }
    ),
  });
  const user = await guestUser(k);
  if (user) {
    const taps = network.nics.some((n) => n.tap);
    await grantGuestFiles(k, user, {
      paths,
      kernel,
      apps,
      vkaos,
      taps,
      vhost: taps && vhost,
      fresh: fresh
        ? [
          paths.configDisk,
          ...disks.map((d) => d.overlay),
          ...(image.dataDiskMiB === null ? [] : [dataDiskPath]),
        ]
        : null,
    });
  }
  return {
    argv,
    paths,
    forwards,
    serialFrom,
    logFrom,
    modules: [vkaos, ...apps],
    machine,
    machineWhy: why,
    network,
    user,
  };
}

const devicesGranted = new Set<string>();

/**
 * The user QEMU runs as: `kaos-qemu` when kattach is root (created once if missing), else null
 * (QEMU runs as kattach's own user).
 */
export function guestUser(k: Kattach): Promise<UserIds | null> {
  return ensureGuestUser((line) => k.log(line));
}

/**
 * Makes what this instance's QEMU opens reachable for the QEMU user, and nothing more: its own
 * instance directory becomes the user's; the module images and the vKaOS kernel and initrd get
 * group read, the directories on their way group traversal (the configuration database and the
 * rest of STATE stay root's); directories above STATE get `o+x` where they lack it; /dev/kvm
 * under KVM, /dev/net/tun (and /dev/vhost-net when used) for tap NICs.
 */
async function grantGuestFiles(
  k: Kattach,
  user: UserIds,
  o: {
    paths: InstancePaths;
    kernel: VkaosFiles;
    apps: Module[];
    vkaos: Module;
    /** The instance has tap NICs: QEMU opens /dev/net/tun. */
    taps: boolean;
    vhost: boolean;
    /** The files in the instance's directory when it was made just now; null: look. */
    fresh: string[] | null;
  },
): Promise<void> {
  const state = k.stateDir;
  const cacheDir = o.kernel.kernel.slice(0, o.kernel.kernel.lastIndexOf("/"));
  // The instance's directory lies under STATE/instances, or on its storage
  // (STATE/storage/<name>/instances): the directories on the way get group traversal.
  const instancesDir = o.paths.dir.slice(0, o.paths.dir.lastIndexOf("/"));
  const root = instancesDir.slice(0, instancesDir.lastIndexOf("/"));
  const onStorage = root === state ? [] : [`${state}/storage`, root];
  const shared = [
    state,
    ...onStorage,
    instancesDir,
    `${state}/modules`,
    ...o.apps.flatMap((m) => [m.dir, `${m.dir}/${m.name}.aqi`]),
    `${state}/cache`,
    `${state}/cache/vkaos`,
    cacheDir,
    o.kernel.kernel,
    o.kernel.initrd,
    ...(o.kernel.pvh ? [o.kernel.pvh] : []),
  ];
  const digests = [o.vkaos, ...o.apps].map(imageDigest).join(" ");
  await Promise.all([
    // The same for every guest on the same storage: granted once (again after a failed start).
    launchFact(`grants ${user.gid} ${digests} ${shared.join(" ")}`, async () => {
      const changed = await grantTraversal(k.stateDir);
      if (changed.length > 0) {
        k.log(`supervisor: made ${changed.join(", ")} traversable (o+x) for ${QEMU_USER}`);
      }
      await Promise.all(shared.map((path) => grantGroup(path, user.gid)));
    }),
    o.fresh ? handOver(o.paths.dir, o.fresh, user) : chownTree(o.paths.dir, user),
  ]);
  // Without udev (the appliance) devtmpfs makes /dev/net/tun root's only (0600): QEMU, not
  // root, then cannot attach to its tap even though the tap is its user's.
  const devices = [
    ...(k.accel.kind === "kvm" ? ["/dev/kvm"] : []),
    ...(o.taps ? ["/dev/net/tun"] : []),
    ...(o.vhost ? ["/dev/vhost-net"] : []),
  ];
  for (const device of devices.filter((d) => !devicesGranted.has(d))) {
    devicesGranted.add(device);
    k.log(`supervisor: ${device} for ${QEMU_USER}: ${await grantDevice(user, device)}`);
  }
}

/**
 * The guest ports to forward: each module's tcp/http readiness port and its `port`
 * configuration value when it has one. Host ports are free 127.0.0.1 ports, the previous
 * boot's when they are still free.
 */
function allocateForwards(
  instance: string,
  apps: Module[],
  guest: GuestModule[],
  previous: Forward[],
): Forward[] {
  const out: Forward[] = [];
  const add = (module: string, guestPort: number) => {
    if (out.some((f) => f.guestPort === guestPort)) return;
    const old = previous.find((f) => f.guestPort === guestPort && f.module === module);
    out.push({ hostPort: hostPorts.take(instance, old?.hostPort), guestPort, module });
  };
  apps.forEach((m, i) => {
    const r = m.appmgr.readiness;
    if (r.type === "tcp" || r.type === "http") add(m.name, r.port);
    const port = guest[i].config.port;
    if (typeof port === "number" && port >= 1 && port <= 65535) add(m.name, port);
  });
  return out;
}

/**
 * Host ports for forwards: free on 127.0.0.1 and not handed to another instance lately. Between a
 * start choosing a free port and its QEMU binding it the port still looks free, so the starts of
 * a deploy, running at once, could draw the same one (the later QEMU then refused to start: "Could
 * not set up host forwarding rule"). A port handed out is kept from other instances for `holdMs`
 * (QEMU binds it long before; a running guest's port is bound, never free).
 */
export class HostPorts {
  #given = new Map<number, { instance: string; at: number }>();
  #holdMs: number;
  #free: () => number;

  constructor(options: { holdMs?: number; free?: () => number } = {}) {
    this.#holdMs = options.holdMs ?? 60_000;
    this.#free = options.free ?? freePort;
  }

  /**
   * A port for `instance`: `wanted` (its previous boot's) when it is free and not handed to
   * another instance lately, else a fresh free one no instance was handed lately.
   */
  take(instance: string, wanted?: number): number {
    const now = Date.now();
    for (const [port, g] of this.#given) if (now - g.at > this.#holdMs) this.#given.delete(port);
    const ownOrFree = (p: number) => (this.#given.get(p)?.instance ?? instance) === instance;
    let port = wanted !== undefined && ownOrFree(wanted) && portFree(wanted) ? wanted : 0;
    for (let tries = 0; port === 0; tries++) {
      const p = this.#free();
      if (!this.#given.has(p) || tries >= 100) port = p;
    }
    this.#given.set(port, { instance, at: now });
    return port;
  }
}

const hostPorts = new HostPorts();

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

/** The instance's data disk file: made once, kept across restarts and module updates. */
export const DATA_DISK_FILE = "data.qcow2";
/** Where vKaOS mounts the data disk when no module's appmgr.aq says. */
export const DEFAULT_DATA_MOUNT = "/data";

/** Where the guest mounts its data disk: the mount the (one) module declaring one asks for. */
function dataMount(apps: Module[]): string {
  return apps.find((m) => m.appmgr.data)?.appmgr.data?.mount ?? DEFAULT_DATA_MOUNT;
}

/**
 * Makes the data disk (an empty qcow2 of `mib` MiB; the guest formats it) unless it exists;
 * written in TypeScript (vmimage/qcow2.ts), no `qemu-img` run.
 */
async function ensureDataDisk(path: string, mib: number): Promise<void> {
  if (await exists(path)) return;
  await writeAtomic(path, renderQcow2({ sizeBytes: mib * 2 ** 20 }));
}

/** The digest of a module's image (the key of its overlays). */
function imageDigest(m: Module): string {
  return m.files.find((f) => f.part === "image")?.sha256 ?? "unknown";
}

/** An instance's overlay file over a module's image: `<module>-<sha256[:16]>.qcow2`. */
export function overlayName(m: Pick<Module, "name" | "files">): string {
  return `${m.name}-${imageDigest(m as Module).slice(0, 16)}.qcow2`;
}

/**
 * The files among `files` that are overlays of `module` over another image than `keep`'s:
 * `<module>-<16 hex>.qcow2`, and `<module>.qcow2` of releases that did not key them.
 */
export function staleOverlays(files: string[], module: string, keep: string): string[] {
  const escaped = module.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(`^${escaped}(-[0-9a-f]{16})?\\.qcow2$`);
  return files.filter((f) => f !== keep && pattern.test(f));
}

/**
 * Gives an instance its copy-on-write overlay over a module image: the qcow2 header rendered in
 * TypeScript (vmimage/qcow2.ts; what `qemu-img create -f qcow2 -b IMAGE -F raw` writes), so a
 * deploy runs no process per instance but QEMU. Its virtual size is the image's, rounded up to
 * whole sectors as QEMU's raw driver reports it.
 */
async function writeOverlay(m: Module, overlay: string, o: { fresh: boolean }): Promise<void> {
  const image = `${m.dir}/${m.name}.aqi`;
  const size = await launchFact(
    `size ${image} ${imageDigest(m)}`,
    () => Deno.stat(image).then((s) => s.size),
  );
  const sizeBytes = Math.ceil(size / 512) * 512;
  const qcow2 = renderQcow2({ sizeBytes, backing: { path: image, format: "raw" } });
  await (o.fresh ? writeNew : writeAtomic)(overlay, qcow2);
}

/**
 * Extractions of the vKaOS image under way, by cache directory: the starts of a `deploy
 * --count 10` share one (each reading the whole image into memory left kattach about 6 MiB
 * larger per guest of the first deploy; bench/memory.ts).
 */
const extracting = new Map<string, Promise<VkaosFiles>>();

/** The extracted vKaOS files. */
export interface VkaosFiles {
  kernel: string;
  initrd: string;
  /** The kernel's ELF for PVH entry (microvm boots it without the guest inflating it), or null. */
  pvh: string | null;
}

/**
 * Extracts the vKaOS kernel and initrd once per image hash, and the kernel's PVH ELF when the
 * kernel is a bzImage that carries one (vmimage/pvh.ts); returns their paths.
 */
export function extractVkaos(stateDir: string, vkaos: Module): Promise<VkaosFiles> {
  const sha = vkaos.files.find((f) => f.part === "image")?.sha256 ?? "unknown";
  const dir = `${stateDir}/cache/vkaos/${sha.slice(0, 16)}`;
  let done = extracting.get(dir);
  if (!done) {
    done = extractVkaosTo(dir, vkaos).finally(() => extracting.delete(dir));
    extracting.set(dir, done);
  }
  return done;
}

async function extractVkaosTo(dir: string, vkaos: Module): Promise<VkaosFiles> {
  const kernel = `${dir}/kernel`;
  const initrd = `${dir}/initrd`;
  // The cache's files are looked for at once (every start after the first finds them).
  const pvh = `${dir}/kernel.pvh`;
  const none = `${dir}/kernel.no-pvh`;
  const [haveKernel, haveInitrd, havePvh, haveNone] = await Promise.all(
    [kernel, initrd, pvh, none].map(exists),
  );
  if (haveKernel && haveInitrd && havePvh) return { kernel, initrd, pvh };
  if (haveKernel && haveInitrd && haveNone) return { kernel, initrd, pvh: null };
  if (!haveKernel || !haveInitrd) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await untarKernelAndInitrd(`${vkaos.dir}/${vkaos.name}.aqi`, dir);
  }
  // The PVH ELF, or an empty marker saying the kernel has none (a cache from before has neither).
  if (await exists(pvh)) return { kernel, initrd, pvh };
  if (await exists(none)) return { kernel, initrd, pvh: null };
  const found = await inflatePvhElf(kernel, pvh);
  if (!found) await writeAtomic(none, new Uint8Array());
  return { kernel, initrd, pvh: found ? pvh : null };
}

/**
 * Writes the image's `kernel` and `initrd` into `dir` with `tar -x` (busybox's on the appliance):
 * the image (MiB) never passes through kattach's heap, where it stayed as garbage after the first
 * start of a deploy (issue 13: memory per guest). Each must come out a regular file; a start from
 * an image without them fails saying so.
 */
async function untarKernelAndInitrd(aqi: string, dir: string): Promise<void> {
  const tmp = `${dir}/.untar-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(tmp, { mode: 0o700 });
  try {
    const out = await runCommand(["tar", "-x", "-f", aqi, "-C", tmp, "kernel", "initrd"]);
    for (const name of ["kernel", "initrd"]) {
      const st = await Deno.lstat(`${tmp}/${name}`).catch(() => null);
      if (!st?.isFile) {
        throw new UserError(
          `Cannot start from the vKaOS image ${aqi}: it holds no ${name} as a regular file`,
          { hint: out.stderr.trim() || "re-import the vKaOS module" },
        );
      }
    }
    for (const name of ["kernel", "initrd"]) {
      await Deno.chmod(`${tmp}/${name}`, 0o600);
      await Deno.rename(`${tmp}/${name}`, `${dir}/${name}`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function writeAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeFile(tmp, data, { mode: 0o600 });
  await Deno.rename(tmp, path);
}

/**
 * Hands a directory made just now and the files written into it to the QEMU user: at once, on
 * the JS thread (a chown(2) each; {@linkcode chownTree} reads the directory first).
 */
function handOver(dir: string, files: string[], ids: UserIds): Promise<void> {
  return settledNow(() => {
    for (const path of [dir, ...files]) Deno.chownSync(path, ids.uid, ids.gid);
  });
}

/**
 * Writes a file that must not exist yet (0600), in a directory made just now: at once, on the
 * JS thread. A new instance's files are small (the config disk 64 KiB, an overlay's header a
 * few KiB) and go to the page cache: some 50 µs each, against a round trip through Deno's thread
 * pool (0.3-1 ms each, more on a busy machine) before QEMU can be spawned.
 */
function writeNew(path: string, data: Uint8Array): Promise<void> {
  return settledNow(() => Deno.writeFileSync(path, data, { mode: 0o600, createNew: true }));
}

/**
 * Runs `fn` now and says how it went as a promise: a throw (a full disk) is a rejection, as an
 * async write's would be, so that it reaches the start's Promise.all beside the other steps and
 * none of theirs is left unhandled.
 */
function settledNow(fn: () => void): Promise<void> {
  try {
    fn();
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
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

/**
 * True when `pid` is the QEMU of this instance: its command line writes the instance's pidfile
 * (unique per instance and state directory; its QMP socket no longer appears there: kattach hands
 * it over as a descriptor).
 */
export function isInstanceQemu(pid: number, pidfile: string): boolean {
  try {
    const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
    return cmdline.some((a, i) => a === pidfile && cmdline[i - 1] === "-pidfile");
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

/** QEMU's own output, appended over its boots: `qemu.log` in the instance's directory. */
export function qemuLogPath(paths: Pick<InstancePaths, "dir">): string {
  return `${paths.dir}/qemu.log`;
}

/**
 * Makes an instance's directory (and its parents, 0700); true when it did not exist (nothing of
 * an earlier boot is in it), false when it did. Something else by that name is an error. At
 * once, on the JS thread: one mkdir(2), before anything else of a start can go on.
 */
export function makeInstanceDir(dir: string): boolean {
  try {
    Deno.mkdirSync(dir, { mode: 0o700 });
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      Deno.mkdirSync(dir.slice(0, dir.lastIndexOf("/")), { recursive: true, mode: 0o700 });
      return makeInstanceDir(dir);
    }
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  // There: a directory (an earlier boot's) or, an error, something else.
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return false;
}

/** Removes what an instance's last QEMU left behind: its sockets and its pid file. */
export async function clearLeftovers(paths: InstancePaths): Promise<void> {
  await Promise.all(
    [paths.qmp, paths.console, paths.agent, paths.pidfile].map((p) =>
      Deno.remove(p).catch(() => {})
    ),
  );
}

/** Removes an instance's runtime directory (overlays, logs, sockets) under `root`. */
export async function removeInstanceDir(root: string, name: string): Promise<void> {
  await Deno.remove(instancePaths(root, name).dir, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}
