/**
 * Guests shared by the benchmarks: the `web` vmimage of the fixtures, and clean-up: the guests a
 * hosted kattach started are daemonized QEMUs that outlive it (kattach re-attaches after a
 * restart), so a benchmark kills them by pid file.
 */
import { hostTscKhz } from "../host/mod.ts";
import type { IpcClient } from "../ipc/mod.ts";
import { readUstar } from "../lib/ustar.ts";
import {
  guestNics,
  inflatePvhElf,
  QBOOT_ROM,
  renderConfigDisk,
  renderQcow2,
  renderQemuArgv,
} from "../vmimage/mod.ts";

/**
 * Imports vKaOS (`vkaos`: its module directory) and the `web` fixture module from `out`
 * (fixtures/out), and creates the `web` vmimage of `web` alone.
 */
export async function createWebImage(client: IpcClient, o: { out: string; vkaos?: string }) {
  await client.call("module.import", { path: o.vkaos ?? `${o.out}/vkaos` });
  await client.call("module.import", { path: `${o.out}/web` });
  await client.call("vmimage.create", {
    name: "web",
    modules: ["web"],
    configGroups: [],
    vlans: [],
  });
}

/** SIGKILLs the process whose pid a pid file holds; a missing file or process is no error. */
export function killPidfile(path: string): void {
  try {
    const pid = Number(Deno.readTextFileSync(path).trim());
    if (pid > 1) Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
}

/** SIGKILLs every guest QEMU of the hosted kattach state directory `state`. */
export function killStateGuests(state: string): void {
  try {
    for (const e of Deno.readDirSync(`${state}/instances`)) {
      killPidfile(`${state}/instances/${e.name}/qemu.pid`);
    }
  } catch { /* no instances */ }
}

/** vKaOS's kernel and initrd for bare QEMUs, as kattach boots microvm. */
export interface BareKernel {
  /** The kernel's PVH ELF (inflated once on the host) when it has one, else the bzImage. */
  kernel: string;
  initrd: string;
  /** The host facts kattach passes QEMU: qboot installed, the host's TSC rate. */
  qboot: boolean;
  tscKhz: number | undefined;
}

/**
 * Unpacks vKaOS (`out`: fixtures/out) into `dir` for bare QEMUs, readable by all (a QEMU user
 * reads them when the bench runs as root), and reads the host facts kattach passes QEMU.
 */
export async function unpackVkaos(out: string, dir: string): Promise<BareKernel> {
  const parts = readUstar(await Deno.readFile(`${out}/vkaos/vkaos.aqi`), { label: "vkaos.aqi" });
  for (const p of parts) await Deno.writeFile(`${dir}/${p.path}`, p.data, { mode: 0o644 });
  const pvh = await inflatePvhElf(`${dir}/kernel`, `${dir}/kernel.pvh`);
  if (pvh) await Deno.chmod(`${dir}/kernel.pvh`, 0o644);
  return {
    kernel: pvh ? `${dir}/kernel.pvh` : `${dir}/kernel`,
    initrd: `${dir}/initrd`,
    qboot: await Deno.stat(QBOOT_ROM).then(() => true, () => false),
    tscKhz: await hostTscKhz(),
  };
}

/** A bare guest: number `i` (1…), its directory and MAC. */
export interface BareGuest {
  name: string;
  dir: string;
  mac: string;
}

/**
 * Bare guest `i` (from 1) under `dir`: its directory with the files kattach would write for a
 * `web` instance (the config disk, the NIC as kattach configures a user-mode one, slirp's
 * address statically; the `web` overlay over `out`'s module image).
 */
export async function writeBareGuest(out: string, dir: string, i: number): Promise<BareGuest> {
  const g = {
    name: `bare-${i}`,
    dir: `${dir}/bare-${i}`,
    mac: `52:54:00:00:10:${i.toString(16).padStart(2, "0")}`,
  };
  await Deno.mkdir(g.dir, { recursive: true });
  await Deno.writeFile(
    `${g.dir}/config.raw`,
    renderConfigDisk({
      instance: g.name,
      vmimage: "bare",
      ...guestNics([{ mac: g.mac, mode: "user", address: null, gateway: null, vlan: null }], []),
      modules: [{
        name: "web",
        version: "1.0.0",
        startOrder: 100,
        exec: ["bin/start"],
        config: { title: "bench", port: 80, greeting: "hello" },
      }],
    }),
  );
  const image = `${out}/web/web.aqi`;
  const sizeBytes = Math.ceil((await Deno.stat(image)).size / 512) * 512;
  await Deno.writeFile(
    `${g.dir}/web.qcow2`,
    renderQcow2({ sizeBytes, backing: { path: image, format: "raw" } }),
  );
  return g;
}

/**
 * A bare guest's argv, as kattach renders a `web` instance's (microvm, TCG, 256 MiB, one vCPU),
 * its port 80 forwarded from `hostPort`; `qmpInherited`: its QMP socket handed over as fd 3.
 */
export function bareGuestArgv(
  g: BareGuest,
  k: BareKernel,
  o: { hostPort: number; qmpInherited?: boolean },
): string[] {
  return renderQemuArgv({
    instance: g.name,
    machine: "microvm",
    accel: "tcg",
    ...(k.qboot ? { qboot: QBOOT_ROM } : {}),
    ...(k.tscKhz ? { hostTscKhz: k.tscKhz } : {}),
    memoryMiB: 256,
    cpus: 1,
    kernel: k.kernel,
    initrd: k.initrd,
    paths: {
      qmp: `${g.dir}/qmp.sock`,
      console: `${g.dir}/console.sock`,
      serialLog: `${g.dir}/serial.log`,
      pidfile: `${g.dir}/qemu.pid`,
      configDisk: `${g.dir}/config.raw`,
      agent: `${g.dir}/agent.sock`,
    },
    ...(o.qmpInherited ? { qmpInherited: true } : {}),
    disks: [{ module: "web", overlay: `${g.dir}/web.qcow2` }],
    nics: [{ mac: g.mac, forwards: [{ hostPort: o.hostPort, guestPort: 80, module: "web" }] }],
  });
}

/** `n` loopback ports free at once (all held open until all are picked: none handed out twice). */
export function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  listeners.forEach((l) => l.close());
  return ports;
}

/** The most {@linkcode cpusCalm} waits (ms): other work on a shared host may never calm down. */
const CALM_MAX_MS = 3000;
/** Calm: the CPUs at most this busy over two windows of 200 ms in a row (a core free). */
const CALM_BUSY = 0.5;

/**
 * Waits until the CPUs are calm (two 200 ms windows in a row at most half busy; at most
 * {@linkcode CALM_MAX_MS}); returns how busy they were in the last window (0-1, all cores).
 */
export async function cpusCalm(): Promise<number> {
  const until = Date.now() + CALM_MAX_MS;
  let calm = 0;
  let busy = 1;
  while (calm < 2 && Date.now() < until) {
    busy = await busyOver(200);
    calm = busy <= CALM_BUSY ? calm + 1 : 0;
  }
  return busy;
}

/** The machine's CPU time counters: [busy, total] (jiffies, all CPUs; /proc/stat). */
function cpuTicks(): [number, number] {
  const f = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1)
    .map(Number);
  const idle = f[3] + f[4]; // idle + iowait
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return [total - idle, total];
}

/** How busy the CPUs were over the next `ms` (0-1, all cores). */
async function busyOver(ms: number): Promise<number> {
  const [b0, t0] = cpuTicks();
  await new Promise((r) => setTimeout(r, ms));
  const [b1, t1] = cpuTicks();
  return t1 > t0 ? (b1 - b0) / (t1 - t0) : 0;
}
