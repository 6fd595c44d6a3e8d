/**
 * The ways to reach a new QEMU's QMP, compared on N bare QEMUs started together (the guest of
 * bench/deploy.ts: vKaOS's PVH kernel and initrd, a config disk, the `web` overlay, microvm, TCG;
 * as the QEMU user when run as root, as kattach starts them): the time until every one answered
 * `query-status` with `running`, and for each QEMU when its connection, greeting, capabilities and
 * status came. The ways:
 *
 * - `own`: QEMU makes its socket (`-qmp unix:…,server=on,wait=off`), the client tries it every
 *   4 ms until it is there, then waits for each answer before the next command (a script's way,
 *   bench/deploy.ts' bare side);
 * - `handed`: the socket is made listening beforehand and handed to QEMU as its fd 3 (kattach's
 *   way since session 8), the client connects at once and waits for each answer;
 * - `pipelined`: handed, and `qmp_capabilities` and `query-status` are sent right away, before the
 *   greeting (kattach/qmp_first.ts).
 *
 * The ways take turns within each round (each round starts with the next way), each after the
 * CPUs calmed down (two 200 ms windows at most half busy, 3 s at most). Prints each run and the
 * median per way; with `--runs` (default 8) rounds. Figures only; no assertions on time.
 *
 *   scripts/deno run -A bench/qmp_ways.ts [--runs R] [--ways own,handed,pipelined] [N (default 20)]
 */
import { closeFd, ensureGuestUser, hostTscKhz, listenUnixFd, spawnDetached } from "../host/mod.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";
import { readUstar } from "../lib/ustar.ts";
import {
  guestNics,
  inflatePvhElf,
  QBOOT_ROM,
  QEMU_ENV,
  renderConfigDisk,
  renderQcow2,
  renderQemuArgv,
} from "../vmimage/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const OUT = `${ROOT}/fixtures/out`;
const WAYS = ["own", "handed", "pipelined"] as const;
type Way = typeof WAYS[number];
const USAGE =
  "usage: bench/qmp_ways.ts [--runs R (1-30, default 8)] [--ways own,handed,pipelined] [N (1-40, default 20)]";
const cli = parseCliOrExit(Deno.args, {
  usage: USAGE,
  options: { runs: { type: "string" }, ways: { type: "string" } },
  positionals: true,
});
const runs = Number(cli.values.runs ?? 8);
const n = Number(cli.positionals[0] ?? 20);
const ways = (cli.values.ways ?? WAYS.join(",")).split(",") as Way[];
if (
  !Number.isInteger(runs) || runs < 1 || runs > 30 || !Number.isInteger(n) || n < 1 || n > 40 ||
  ways.some((w) => !WAYS.includes(w))
) {
  console.error(`Error: bad runs, ways or N\n${USAGE}`);
  Deno.exit(2);
}

/** When each step of one QEMU's first exchange came, ms since the spawns began. */
interface Steps {
  connected: number;
  greeting: number;
  capabilities: number;
  running: number;
}

const encoder = new TextEncoder();
const CAPABILITIES = encoder.encode('{"execute":"qmp_capabilities"}\n');
const STATUS = encoder.encode('{"execute":"query-status"}\n');

/** One first exchange, on a raw connection (so each step is timed where it lands). */
async function firstExchange(path: string, t0: number, way: Way): Promise<Steps> {
  let conn: Deno.UnixConn;
  for (;;) {
    try {
      conn = await Deno.connect({ transport: "unix", path });
      break;
    } catch (err) {
      if (way !== "own") throw err; // handed: the socket is listening already
      await new Promise((r) => setTimeout(r, 4));
    }
  }
  const at = () => performance.now() - t0;
  const steps: number[] = [at()];
  try {
    if (way === "pipelined") {
      await conn.write(CAPABILITIES);
      await conn.write(STATUS);
    }
    const decoder = new TextDecoder();
    const buf = new Uint8Array(65536);
    let text = "";
    for (;;) {
      const got = await conn.read(buf);
      if (got === null) throw new Error(`${path}: QEMU closed the connection`);
      text += decoder.decode(buf.subarray(0, got), { stream: true });
      for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n")) {
        const msg = JSON.parse(text.slice(0, i));
        text = text.slice(i + 1);
        if (msg.event) continue;
        steps.push(at());
        if (steps.length === 2 && way !== "pipelined") await conn.write(CAPABILITIES);
        if (steps.length === 3 && way !== "pipelined") await conn.write(STATUS);
        if (steps.length === 4) {
          if (msg.return?.running !== true) throw new Error(`${path}: ${JSON.stringify(msg)}`);
          return {
            connected: steps[0],
            greeting: steps[1],
            capabilities: steps[2],
            running: steps[3],
          };
        }
      }
    }
  } finally {
    conn.close();
  }
}

function cpuTicks(): [number, number] {
  const f = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1)
    .map(Number);
  const idle = f[3] + f[4];
  return [
    f.slice(0, 8).reduce((a, b) => a + b, 0) - idle,
    f.slice(0, 8).reduce((a, b) => a + b, 0),
  ];
}

/** Until the CPUs are calm: two 200 ms windows in a row at most half busy (3 s at most). */
async function settle(): Promise<void> {
  let calm = 0;
  const until = Date.now() + 3000;
  while (calm < 2 && Date.now() < until) {
    const [b0, t0] = cpuTicks();
    await new Promise((r) => setTimeout(r, 200));
    const [b1, t1] = cpuTicks();
    calm = t1 > t0 && (b1 - b0) / (t1 - t0) <= 0.5 ? calm + 1 : 0;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const base = await Deno.makeTempDir({ prefix: "kaos-bench-qmp-ways-" });
await Deno.chmod(base, 0o755); // the QEMU user reads the kernel and initrd here
const user = Deno.uid() === 0 ? await ensureGuestUser(() => {}) : null;
const live = new Set<number>();
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => {
    for (const pid of live) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    Deno.removeSync(base, { recursive: true });
    Deno.exit(130);
  });
}

/** N QEMUs reached `way`'s way; each one's steps, in the order their status came. */
async function runOnce(way: Way, run: number): Promise<Steps[]> {
  const dir = `${base}/${way}-${run}`;
  const guests = Array.from({ length: n }, (_, i) => ({
    dir: `${dir}/g-${i + 1}`,
    mac: `52:54:00:00:10:${(i + 1).toString(16).padStart(2, "0")}`,
  }));
  const image = `${OUT}/web/web.aqi`;
  const sizeBytes = Math.ceil((await Deno.stat(image)).size / 512) * 512;
  for (const [i, g] of guests.entries()) {
    await Deno.mkdir(g.dir, { recursive: true });
    const nics = guestNics(
      [{ mac: g.mac, mode: "user", address: null, gateway: null, vlan: null }],
      [],
    );
    await Deno.writeFile(
      `${g.dir}/config.raw`,
      renderConfigDisk({
        instance: `g-${i + 1}`,
        vmimage: "bare",
        ...nics,
        modules: [{
          name: "web",
          version: "1.0.0",
          startOrder: 100,
          exec: ["bin/start"],
          config: { title: "bench", port: 80, greeting: "hello" },
        }],
      }),
    );
    await Deno.writeFile(
      `${g.dir}/web.qcow2`,
      renderQcow2({ sizeBytes, backing: { path: image, format: "raw" } }),
    );
    if (user) {
      for (const f of ["", "/config.raw", "/web.qcow2"]) {
        Deno.chownSync(`${g.dir}${f}`, user.uid, user.gid);
      }
    }
  }
  await Deno.chmod(dir, 0o755);
  const ends: Promise<unknown>[] = [];
  const exchanges: Promise<Steps>[] = [];
  const t0 = performance.now();
  try {
    for (const [i, g] of guests.entries()) {
      const argv = renderQemuArgv({
        instance: `g-${i + 1}`,
        machine: "microvm",
        accel: "tcg",
        ...(qboot ? { qboot: QBOOT_ROM } : {}),
        ...(tscKhz ? { hostTscKhz: tscKhz } : {}),
        memoryMiB: 256,
        cpus: 1,
        kernel: pvh ? `${base}/kernel.pvh` : `${base}/kernel`,
        initrd: `${base}/initrd`,
        paths: {
          qmp: `${g.dir}/qmp.sock`,
          console: `${g.dir}/console.sock`,
          serialLog: `${g.dir}/serial.log`,
          pidfile: `${g.dir}/qemu.pid`,
          configDisk: `${g.dir}/config.raw`,
          agent: `${g.dir}/agent.sock`,
        },
        ...(way === "own" ? {} : { qmpInherited: true }),
        disks: [{ module: "web", overlay: `${g.dir}/web.qcow2` }],
        nics: [{ mac: g.mac }],
      });
      const fd = way === "own" ? undefined : listenUnixFd(`${g.dir}/qmp.sock`);
      try {
        const proc = spawnDetached(argv, {
          cwd: g.dir,
          logFile: `${g.dir}/qemu.log`,
          env: QEMU_ENV,
          ...(fd === undefined ? {} : { inheritFd: fd }),
          ...(user ? { user } : {}),
        });
        live.add(proc.pid);
        ends.push(proc.exited.finally(() => live.delete(proc.pid)));
      } finally {
        if (fd !== undefined) closeFd(fd);
      }
      // Handed: connect right after the spawn, as kattach does; own: polled from here.
      exchanges.push(firstExchange(`${g.dir}/qmp.sock`, t0, way));
    }
    const steps = await Promise.all(exchanges);
    return steps.sort((a, b) => a.running - b.running);
  } finally {
    for (const pid of live) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    const keepAlive = setInterval(() => {}, 100); // exits are seen on SIGCHLD
    await Promise.all(ends);
    clearInterval(keepAlive);
    await Deno.remove(dir, { recursive: true });
  }
}

const parts = readUstar(await Deno.readFile(`${OUT}/vkaos/vkaos.aqi`), { label: "vkaos.aqi" });
for (const p of parts) await Deno.writeFile(`${base}/${p.path}`, p.data, { mode: 0o644 });
const pvh = await inflatePvhElf(`${base}/kernel`, `${base}/kernel.pvh`);
if (pvh) await Deno.chmod(`${base}/kernel.pvh`, 0o644);
const tscKhz = await hostTscKhz();
const qboot = await Deno.stat(QBOOT_ROM).then(() => true, () => false);
const load = () => Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
const fmt = (s: Steps) =>
  [s.connected, s.greeting, s.capabilities, s.running].map(Math.round).join("/");
console.log(
  `bench/qmp_ways: ${n} QEMUs per run (TCG, microvm, the guest of bench/deploy.ts${
    user ? ", as the QEMU user" : ""
  }), ${runs} rounds of ${ways.join(", ")}; ms since the spawns began; load ${load()}`,
);
const lasts = new Map<Way, number[]>(ways.map((w) => [w, []]));
try {
  for (let run = 0; run < runs; run++) {
    for (const way of ways.map((_, i) => ways[(i + run) % ways.length])) {
      await settle();
      const steps = await runOnce(way, run);
      const last = steps.at(-1)!;
      lasts.get(way)!.push(last.running);
      console.log(
        `round ${run + 1} ${way.padEnd(9)} all running ${Math.round(last.running)} ms (median ${
          Math.round(median(steps.map((s) => s.running)))
        }); the last three, connected/greeting/capabilities/running: ${
          steps.slice(-3).map(fmt).join("  ")
        }; load ${load()}`,
      );
    }
  }
  for (const [way, xs] of lasts) {
    console.log(
      `${way.padEnd(9)} all running: median ${Math.round(median(xs))} ms, rounds ${
        xs.map(Math.round).join(" ")
      }`,
    );
  }
} finally {
  await Deno.remove(base, { recursive: true }).catch(() => {});
}
