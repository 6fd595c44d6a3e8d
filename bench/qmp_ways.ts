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
import { closeFd, ensureGuestUser, listenUnixFd, spawnDetached } from "../host/mod.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";
import { QEMU_ENV } from "../vmimage/mod.ts";
import { bareGuestArgv, cpusCalm, freePorts, unpackVkaos, writeBareGuest } from "./_guests.ts";
import { median } from "./_net.ts";

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

/** How long one QEMU's first exchange may take before the run fails (ms). */
const EXCHANGE_MS = 60_000;

/**
 * One first exchange, on a raw connection (so each step is timed where it lands); an error after
 * {@linkcode EXCHANGE_MS} (the connection is closed: its read ends).
 */
async function firstExchange(path: string, t0: number, way: Way): Promise<Steps> {
  const deadline = Date.now() + EXCHANGE_MS;
  let conn: Deno.UnixConn;
  for (;;) {
    try {
      conn = await Deno.connect({ transport: "unix", path });
      break;
    } catch (err) {
      if (way !== "own") throw err; // handed: the socket is listening already
      if (Date.now() > deadline) throw new Error(`${path}: no QMP socket within ${EXCHANGE_MS} ms`);
      await new Promise((r) => setTimeout(r, 4));
    }
  }
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    conn.close();
  }, Math.max(0, deadline - Date.now()));
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
      const got = await conn.read(buf).catch((err) => {
        if (late) throw new Error(`${path}: no status within ${EXCHANGE_MS} ms`);
        throw err;
      });
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
    clearTimeout(timer);
    if (!late) conn.close();
  }
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
  const guests = [];
  for (let i = 1; i <= n; i++) {
    const g = await writeBareGuest(OUT, dir, i);
    if (user) {
      for (const f of ["", "/config.raw", "/web.qcow2"]) {
        Deno.chownSync(`${g.dir}${f}`, user.uid, user.gid);
      }
    }
    guests.push(g);
  }
  await Deno.chmod(dir, 0o755);
  const ports = freePorts(n);
  const ends: Promise<unknown>[] = [];
  const exchanges: Promise<Steps>[] = [];
  const t0 = performance.now();
  try {
    for (const [i, g] of guests.entries()) {
      const argv = bareGuestArgv(g, kernel, { hostPort: ports[i], qmpInherited: way !== "own" });
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
    // Exits are seen on SIGCHLD, which keeps no event loop alive: a timer does, 30 s at most.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.all(ends), new Promise((r) => timer = setTimeout(r, 30_000))]);
    clearTimeout(timer);
    await Deno.remove(dir, { recursive: true });
  }
}

const kernel = await unpackVkaos(OUT, base);
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
      await cpusCalm();
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
