/**
 * Idle guest CPU: the host CPU time (user + system, /proc/PID/stat) a ready `web` guest's QEMU
 * (vKaOS + busybox httpd, deployed by a hosted kattach, TCG, microvm as kattach boots it) uses
 * over a window once it is ready, beside a baseline in the same run: the same vKaOS kernel (its
 * PVH ELF, the same machine, firmware and tsc_early_khz) booted bare with a trivial busybox /init
 * that sleeps, on kattach's TCG CPU model (TCG_CPU) and on QEMU's default qemu64 (before: there
 * the kernel keeps its periodic tick). Also kattach's own CPU over the guest's window (its checks
 * after ready). With `--before DIR` (a vKaOS module directory of another build, e.g. main's
 * fixtures/out/vkaos before a change) a second hosted kattach deploys the same `web` on that vKaOS
 * in each round, for a before/after figure in the same run. Each guest settles 3 s after it is
 * ready before its window; rounds run bare (both CPU models), web, web (before) one after the
 * other. Prints figures with the load average; no assertions on time.
 *
 *   scripts/deno run -A bench/idle_guest.ts [--seconds S] [--rounds R] [--before VKAOS_DIR]
 */
import { hostTscKhz, processCpuMs, spawnDetached } from "../host/mod.ts";
import { buildBusyboxInitramfs, renderBootArgv } from "../buildroot/vkaos-kernel/mod.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";
import { IpcClient } from "../ipc/mod.ts";
import type { DeployedInstance, Instance } from "../ipc/mod.ts";
import { kattachArgv } from "../lib/hosted_kattach.ts";
import { KATTACH_MALLOC_ENV } from "../lib/idle_memory.ts";
import { KATTACH_V8_FLAGS_OPTION } from "../lib/v8_flags.ts";
import { readUstar } from "../lib/ustar.ts";
import { inflatePvhElf, QBOOT_ROM, TCG_CPU } from "../vmimage/mod.ts";
import { createWebImage, killPidfile, killStateGuests } from "./_guests.ts";
import { connectKattach, sleep, waitUntil } from "./_util.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const OUT = `${ROOT}/fixtures/out`;
const USAGE =
  "usage: bench/idle_guest.ts [--seconds S (5-120, default 20)] [--rounds R (1-5, default 1)] [--before VKAOS_DIR]";
const cli = parseCliOrExit(Deno.args, {
  usage: USAGE,
  options: { seconds: { type: "string" }, rounds: { type: "string" }, before: { type: "string" } },
});
const BEFORE = cli.values.before;
if (BEFORE !== undefined && !Deno.statSync(`${BEFORE}/vkaos.aqi`).isFile) {
  console.error(`Error: --before ${BEFORE} holds no vkaos.aqi\n${USAGE}`);
  Deno.exit(2);
}
const SECONDS = Number(cli.values.seconds ?? 20);
const ROUNDS = Number(cli.values.rounds ?? 1);
if (
  !Number.isInteger(SECONDS) || SECONDS < 5 || SECONDS > 120 || !Number.isInteger(ROUNDS) ||
  ROUNDS < 1 || ROUNDS > 5
) {
  console.error(`Error: bad --seconds or --rounds\n${USAGE}`);
  Deno.exit(2);
}
const MARKER = "IDLE-BENCH-READY";

/** CPU time (user + system, ms) process `pid` has used so far; throws when it is gone. */
function cpuMsOf(pid: number): number {
  const ms = processCpuMs(pid);
  if (ms === undefined) throw new Error(`process ${pid} ended during its window`);
  return ms;
}

function load(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

/** The share of a CPU `pids` used over the window (after a 3 s settle), in %, with the load. */
async function idleWindow(pids: number[]): Promise<{ pct: number[]; load: string }> {
  await sleep(3000);
  const before = pids.map(cpuMsOf);
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const ms = performance.now() - t0;
  const pct = pids.map((p, i) => (cpuMsOf(p) - before[i]) * 100 / ms);
  return { pct, load: load() };
}

async function sh(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
}

await sh(`${ROOT}/fixtures/build-modules`, []);
const dir = await Deno.makeTempDir({ prefix: "kaos-bench-idle-guest-" });
const barePidfile = `${dir}/bare.pid`;
/** The hosted kattach processes of this run, by state directory. */
const kattachs = new Map<string, Deno.ChildProcess>();
function cleanUp(): void {
  killPidfile(barePidfile);
  for (const [state, k] of kattachs) {
    killStateGuests(state);
    try {
      k.kill("SIGTERM");
    } catch { /* gone */ }
  }
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => {
    console.error(`bench/idle_guest: ${sig}: killing the guests of this run`);
    cleanUp();
    Deno.exit(130);
  });
}

/**
 * The baseline: vKaOS' kernel with a /init that prints the marker and sleeps, on the CPU model
 * `cpu` (kattach's under TCG, or QEMU's default qemu64 as kattach ran it before).
 */
async function bareIdle(kernel: string, o: { tscKhz?: number; cpu: string }): Promise<number> {
  const initrd = await buildBusyboxInitramfs(await Deno.makeTempDir({ dir }), {
    init: `#!/bin/sh\necho ${MARKER}\nwhile :; do sleep 3600; done\n`,
  });
  const qboot = await Deno.stat(QBOOT_ROM).then(() => true, () => false);
  const argv = renderBootArgv({
    kind: qboot ? "microvm" : "microvm-pvh",
    kernel,
    initrd,
    ...(o.tscKhz ? { tscKhz: o.tscKhz } : {}),
  }).flatMap((a) =>
    a === "stdio" ? [`file:${dir}/bare.serial`] : a === "-nographic" ? ["-display", "none"] : [a]
  );
  // QEMU alone, detached, its console in a file, as kattach runs a guest
  const proc = spawnDetached([
    "qemu-system-x86_64",
    ...argv,
    "-cpu",
    o.cpu,
    "-pidfile",
    barePidfile,
  ], {
    cwd: dir,
    logFile: `${dir}/bare.log`,
  });
  try {
    await waitUntil(
      "the bare kernel's marker",
      120_000,
      async () => (await Deno.readTextFile(`${dir}/bare.serial`).catch(() => "")).includes(MARKER),
    );
    const w = await idleWindow([proc.pid]);
    return w.pct[0];
  } finally {
    killPidfile(barePidfile);
    try {
      Deno.kill(proc.pid, "SIGKILL");
    } catch { /* gone */ }
    await proc.exited;
  }
}

/** A hosted kattach (as the appliance runs it) with vKaOS from `vkaos` and the `web` vmimage. */
async function startKattach(state: string, vkaos: string) {
  const [deno, ...args] = kattachArgv({ state, denoOptions: [KATTACH_V8_FLAGS_OPTION] });
  const child = new Deno.Command(deno, {
    args,
    env: KATTACH_MALLOC_ENV,
    stdin: "null",
    stdout: Deno.env.get("KLOG") ? "inherit" : "null",
    stderr: Deno.env.get("KLOG") ? "inherit" : "null",
  }).spawn();
  kattachs.set(state, child);
  const client = await connectKattach(state, 30_000);
  await createWebImage(client, { out: OUT, vkaos });
  return { client, pid: child.pid, state };
}

/** A `web` guest deployed by kattach: its QEMU's and kattach's CPU over the window. */
async function webIdle({ client, pid: kattachPid }: { client: IpcClient; pid: number }) {
  const [created] = await client.call("deploy", { vmimage: "web", count: 1 }) as DeployedInstance[];
  if (created.outcome === "failed") throw new Error(`deploy: ${created.reason}`);
  try {
    await waitUntil(`${created.name} ready`, 180_000, async () => {
      const list = await client.call("instance.list", { vmimage: "web" }) as Instance[];
      const i = list.find((i) => i.name === created.name);
      if (i?.state === "failed") throw new Error(`${created.name} failed`);
      return i?.state === "running";
    });
    const w = await idleWindow([created.pid!, kattachPid]);
    return { guest: w.pct[0], kattach: w.pct[1], load: w.load };
  } finally {
    await client.call("instance.kill", { name: created.name });
    await client.call("instance.del", { name: created.name });
  }
}

type Idle = { guest: number; kattach: number; load: string };
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (x: number) => `${x.toFixed(1)} %`;
const line = (w: Idle) =>
  `${pct(w.guest)} of a CPU (QEMU), kattach ${pct(w.kattach)}; load ${w.load}`;
try {
  const parts = readUstar(await Deno.readFile(`${OUT}/vkaos/vkaos.aqi`), { label: "vkaos.aqi" });
  for (const p of parts) await Deno.writeFile(`${dir}/${p.path}`, p.data);
  const kernel = await inflatePvhElf(`${dir}/kernel`, `${dir}/kernel.pvh`)
    ? `${dir}/kernel.pvh`
    : `${dir}/kernel`;
  const tscKhz = await hostTscKhz();
  const now = await startKattach(`${dir}/state`, `${OUT}/vkaos`);
  const before = BEFORE === undefined ? null : await startKattach(`${dir}/state-before`, BEFORE);
  console.log(
    `bench/idle_guest: TCG, microvm, vKaOS from fixtures/out${
      BEFORE ? ` (before: ${BEFORE})` : ""
    }; ${SECONDS} s windows after a 3 s settle; load ${load()}`,
  );
  const bares: number[] = [];
  const baresQemu64: number[] = [];
  const webs: Idle[] = [];
  const websBefore: Idle[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const bare = await bareIdle(kernel, { tscKhz, cpu: TCG_CPU });
    bares.push(bare);
    console.log(
      `round ${r + 1}: bare vKaOS kernel, sleeping /init, -cpu ${TCG_CPU} (kattach's): ${
        pct(bare)
      } of a CPU; load ${load()}`,
    );
    const old = await bareIdle(kernel, { tscKhz, cpu: "qemu64" });
    baresQemu64.push(old);
    console.log(
      `round ${r + 1}: bare vKaOS kernel, sleeping /init, -cpu qemu64 (before: a periodic tick): ${
        pct(old)
      } of a CPU; load ${load()}`,
    );
    const web = await webIdle(now);
    webs.push(web);
    console.log(`round ${r + 1}: web guest, ready: ${line(web)}`);
    if (before) {
      const old = await webIdle(before);
      websBefore.push(old);
      console.log(`round ${r + 1}: web guest on the vKaOS before, ready: ${line(old)}`);
    }
  }
  console.log(
    `result: idle web guest ${pct(med(webs.map((w) => w.guest)))} of a CPU (QEMU), kattach ${
      pct(med(webs.map((w) => w.kattach)))
    }${
      before ? `; before ${pct(med(websBefore.map((w) => w.guest)))}` : ""
    }; baseline: bare vKaOS kernel ${pct(med(bares))} (-cpu qemu64 before: ${
      pct(med(baresQemu64))
    }) (same run, medians of ${ROUNDS}); load ${load()}`,
  );
  now.client.close();
  before?.client.close();
} finally {
  cleanUp();
  for (const k of kattachs.values()) await k.status;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
