/**
 * Catalogue benchmark: per App Module (the busybox `web` fixture as the baseline, then nginx,
 * Redis and PostgreSQL from modules/build), in one run on one hosted kattach: the image size;
 * deploy → ready (appmgr readiness, one instance); and reload → change visible: from the start of
 * `config-group set` (reload through the guest agent) until the host sees the new value (web and
 * nginx: the page's title over HTTP; Redis: PING answered with the new password; PostgreSQL: a
 * psql login with the new password). Goals printed beside: reload visible within 1 s under TCG,
 * ready within 2× of `web`; one `goal: …` line per goal. Prints figures only; each figure is the
 * median of --rounds (default 1). KAOS_BENCH_KEEP=1 keeps the state directory (serial logs).
 *
 * `postgresql-disk` is PostgreSQL with a new 256 MiB data disk per instance (its database kept
 * across restarts and module updates; the guest formats the disk and copies the template cluster
 * onto it at this first boot), printed beside the goal, with the copy's own time (`data disk:`).
 *
 *   scripts/deno run -A bench/modules.ts [--rounds R] [MODULE…]
 *   (default: nginx redis postgresql postgresql-disk)
 */
import { IpcClient } from "../ipc/mod.ts";
import type { Instance } from "../ipc/mod.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";
import { kattachArgv } from "../lib/hosted_kattach.ts";
import { killStateGuests } from "./_guests.ts";
import { connectKattach } from "./_util.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const USAGE =
  "usage: bench/modules.ts [--rounds R (1-10, default 1)] [nginx|redis|postgresql|postgresql-disk…]";
const MODULES = ["nginx", "redis", "postgresql", "postgresql-disk"];
const cli = parseCliOrExit(Deno.args, {
  usage: USAGE,
  options: { rounds: { type: "string" } },
  positionals: true,
});
const rounds = Number(cli.values.rounds ?? 1);
const real = cli.positionals.length > 0 ? cli.positionals : MODULES;
if (
  !Number.isInteger(rounds) || rounds < 1 || rounds > 10 ||
  real.some((m) => !MODULES.includes(m))
) {
  console.error(`Error: bad rounds or module\n${USAGE}`);
  Deno.exit(2);
}

/** How to configure a module, and how the host sees a configuration change. */
interface Subject {
  name: string;
  /** The module (default: name). */
  module?: string;
  dir: string;
  /** A data disk per instance (`vmimage create … --data-disk`), MiB; default none. */
  dataDiskMiB?: number;
  port: number;
  values: (round: number) => Record<string, string>;
  change: (round: number) => Record<string, string>;
  /** True once the host sees `change(round)` in effect on the forwarded port. */
  visible: (hostPort: number, round: number) => Promise<boolean>;
  /**
   * Pause between two looks (ms): a look costs the guest's one vCPU too, and a psql login (a
   * backend forked, SCRAM) costs it ~0.1 s under TCG, so PostgreSQL is looked at less often.
   */
  pollMs: number;
}

async function title(port: number): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
    return (await res.text()).match(/<title>(.*)<\/title>/)?.[1] ?? "";
  } catch {
    return "";
  }
}

/** Redis: AUTH + PING over RESP; true when PONG comes back. */
async function redisPing(port: number, password: string): Promise<boolean> {
  let conn: Deno.Conn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode(`AUTH ${password}\r\nPING\r\n`));
    const buf = new Uint8Array(256);
    let text = "";
    const deadline = Date.now() + 2000;
    while (!text.includes("PONG") && !text.includes("-") && Date.now() < deadline) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text.includes("+PONG");
  } catch {
    return false;
  } finally {
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

async function psqlLogin(port: number, password: string): Promise<boolean> {
  const out = await new Deno.Command("psql", {
    args: [
      "-X",
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-U",
      "bench",
      "-d",
      "bench",
      "-Atc",
      "SELECT 1",
    ],
    env: { PGPASSWORD: password, PGCONNECT_TIMEOUT: "5" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return out.success;
}

const subjects: Record<string, Subject> = {
  web: {
    name: "web",
    dir: `${ROOT}/fixtures/out/web`,
    port: 80,
    values: (r) => ({ title: `web round ${r}` }),
    change: (r) => ({ title: `web reloaded ${r}` }),
    visible: async (p, r) => await title(p) === `web reloaded ${r}`,
    pollMs: 10,
  },
  nginx: {
    name: "nginx",
    dir: `${ROOT}/build/modules/out/nginx`,
    port: 80,
    values: (r) => ({ title: `nginx round ${r}` }),
    change: (r) => ({ title: `nginx reloaded ${r}` }),
    visible: async (p, r) => await title(p) === `nginx reloaded ${r}`,
    pollMs: 10,
  },
  redis: {
    name: "redis",
    dir: `${ROOT}/build/modules/out/redis`,
    port: 6379,
    values: (r) => ({ password: `before${r}` }),
    change: (r) => ({ password: `after${r}` }),
    visible: (p, r) => redisPing(p, `after${r}`),
    pollMs: 10,
  },
  postgresql: {
    name: "postgresql",
    dir: `${ROOT}/build/modules/out/postgresql`,
    port: 5432,
    values: (r) => ({ database: "bench", user: "bench", password: `before-pw-${r}` }),
    change: (r) => ({ password: `after-pw-${r}` }),
    visible: (p, r) => psqlLogin(p, `after-pw-${r}`),
    pollMs: 100,
  },
};
// PostgreSQL as a user keeps data: its cluster on a (new, blank) 256 MiB data disk that the guest
// formats, and the template cluster copied onto, at its first boot
subjects["postgresql-disk"] = {
  ...subjects.postgresql,
  name: "postgresql-disk",
  module: "postgresql",
  dataDiskMiB: 256,
};

/** A guest console line and when the host first saw it (ms after the deploy call). */
interface Mark {
  at: number;
  line: string;
}

/**
 * Where a deploy's time goes: polls the instance's serial log every 10 ms while the deploy runs
 * and notes when each line of the guest init and of the module's service first shows (host
 * clock, so it includes the host's side: config disk, QEMU start, the readiness poll).
 */
function watchSerial(path: string, t0: number): { marks: Promise<Mark[]>; stop(): void } {
  let stopped = false;
  const marks: Mark[] = [];
  const run = async () => {
    let seen = 0;
    let rest = "";
    const dec = new TextDecoder();
    while (!stopped) {
      let data: Uint8Array | undefined;
      try {
        data = await Deno.readFile(path);
      } catch { /* not yet created */ }
      const now = performance.now() - t0;
      if (data && marks.length === 0) {
        marks.push({ at: now, line: "(serial log created: QEMU started)" });
      }
      if (data && data.length > seen) {
        rest += dec.decode(data.subarray(seen), { stream: true });
        seen = data.length;
        const lines = rest.split("\n");
        rest = lines.pop()!;
        for (const l of lines) {
          // deno-lint-ignore no-control-regex
          const t = l.replace(/[\x00-\x1f\x7f]/g, "").trim();
          if (t) marks.push({ at: now, line: t.slice(0, 90) });
        }
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    return marks;
  };
  const done = run();
  return { marks: done, stop: () => void (stopped = true) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function sh(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
}

async function startKattach(state: string): Promise<Deno.ChildProcess> {
  const [deno, ...args] = kattachArgv({ state, sshPort: 0, denoOptions: [] });
  const child = new Deno.Command(deno, {
    args,
    stdin: "null",
    stdout: Deno.env.get("KLOG") ? "inherit" : "null",
    stderr: Deno.env.get("KLOG") ? "inherit" : "null",
  }).spawn();
  (await connectKattach(state, 30_000)).close();
  return child;
}

await sh(`${ROOT}/fixtures/build-modules`, []);
await sh(`${ROOT}/modules/build`, [...new Set(real.map((m) => subjects[m].module ?? m))]);
const dir = await Deno.makeTempDir({ prefix: "kaos-bench-modules-" });
const state = `${dir}/state`;
const kattach = await startKattach(state);
const client = await IpcClient.connect(`${state}/run`);
/** copy: the template cluster's copy onto a new data disk, from its console lines (ms; NaN: none). */
type Figures = { ready: number; set: number; agent: number; visible: number; copy: number };
const results: { name: string; size: number; figures: Figures; timeline: Mark[] }[] = [];
try {
  await client.call("module.import", { path: `${ROOT}/fixtures/out/vkaos` });
  // Rounds interleave the modules (web, nginx, …, web, nginx, …) so that each is measured under
  // the same load as its baseline, on a host whose load moves.
  const all = [subjects.web, ...real.map((m) => subjects[m])];
  const per = new Map<string, { rs: Figures[]; timeline: Mark[] }>();
  const imported = new Set<string>();
  for (const s of all) {
    if (!imported.has(s.dir)) await client.call("module.import", { path: s.dir });
    imported.add(s.dir);
    per.set(s.name, { rs: [], timeline: [] });
  }
  for (let r = 0; r < rounds; r++) {
    for (const s of all) {
      const { rs } = per.get(s.name)!;
      const group = `${s.name}-${r}`;
      await client.call("configGroup.add", {
        module: s.module ?? s.name,
        name: group,
        values: s.values(r),
      });
      await client.call("vmimage.create", {
        name: group,
        modules: [s.module ?? s.name],
        ...(s.dataDiskMiB ? { dataDiskMiB: s.dataDiskMiB } : {}),
        configGroups: [group],
        vlans: [],
      });
      const t0 = performance.now();
      const watch = watchSerial(`${state}/instances/${group}-1/serial.log`, t0);
      const [inst] = await client.call("deploy", {
        vmimage: group,
        count: 1,
        wait: true,
      }).finally(() => watch.stop()) as Instance[];
      const ready = performance.now() - t0;
      const marks = await watch.marks;
      if (r === 0) per.get(s.name)!.timeline = [...marks, { at: ready, line: "kattach: ready" }];
      const at = (text: string) => marks.find((m) => m.line.includes(text))?.at ?? NaN;
      const copy = at("cluster copied onto the data disk") -
        at("copying the template cluster onto the data disk");
      const shown = await client.call("instance.show", { name: inst.name }) as Instance;
      if (shown.state !== "running") throw new Error(`${inst.name} is ${shown.state}`);
      const hostPort = shown.forwards!.find((f) => f.guestPort === s.port)!.hostPort;
      const t1 = performance.now();
      const set = client.call("configGroup.set", { name: group, values: s.change(r), apply: true })
        .then((res) => {
          const took = performance.now() - t1;
          // the agent request's own time, as kattach reports it ("reloaded in N ms")
          const detail = (res as { applied?: { detail: string }[] }).applied?.[0]?.detail ?? "";
          return { took, agent: Number(detail.match(/reloaded in (\d+) ms/)?.[1] ?? NaN) };
        });
      const deadline = t1 + 60_000;
      while (!await s.visible(hostPort, r)) {
        if (performance.now() > deadline) throw new Error(`${s.name}: the change never showed`);
        await new Promise((res) => setTimeout(res, s.pollMs));
      }
      const visible = performance.now() - t1;
      const done = await set;
      rs.push({ ready, set: done.took, agent: done.agent, visible, copy });
      await client.call("instance.kill", { name: inst.name });
      await client.call("instance.del", { name: inst.name });
    }
  }
  for (const s of all) {
    const { rs, timeline } = per.get(s.name)!;
    const size = (await Deno.stat(`${s.dir}/${s.module ?? s.name}.aqi`)).size;
    results.push({
      name: s.name,
      size,
      figures: {
        ready: median(rs.map((x) => x.ready)),
        set: median(rs.map((x) => x.set)),
        agent: median(rs.map((x) => x.agent)),
        visible: median(rs.map((x) => x.visible)),
        copy: median(rs.map((x) => x.copy)),
      },
      timeline,
    });
  }
} finally {
  client.close();
  killStateGuests(state);
  kattach.kill("SIGTERM");
  await kattach.status;
  // KAOS_BENCH_KEEP=1 keeps the state (instances' serial logs) for a look afterwards
  if (Deno.env.get("KAOS_BENCH_KEEP")) console.error(`bench/modules: state kept in ${dir}`);
  else await Deno.remove(dir, { recursive: true }).catch(() => {});
}

const web = results[0].figures.ready;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
console.log(
  `bench/modules: hosted kattach, TCG, microvm, one instance per module, medians of ${rounds} round(s); ${navigator.hardwareConcurrency} CPUs, load ${load}`,
);
console.log(
  "MODULE      IMAGE      DEPLOY→READY  ×web   (goal ≤ 2×)  SET→RETURNED  SET→VISIBLE  (goal ≤ 1 s)",
);
for (const r of results) {
  const x = r.figures.ready / web;
  console.log(
    `${r.name.padEnd(11)} ${(r.size / 1048576).toFixed(1).padStart(5)} MiB  ${
      s(r.figures.ready).padEnd(13)
    } ${x.toFixed(2).padEnd(6)} ${
      (r.name === "web" ? "baseline" : x <= 2 ? "met" : "missed").padEnd(12)
    } ${s(r.figures.set).padEnd(13)} ${s(r.figures.visible).padEnd(12)} ${
      r.figures.visible <= 1000 ? "met" : "missed"
    }`,
  );
}
console.log(
  "\nreload: SET→RETURNED = kattach (IPC, store, config rendering) + the agent request (framing, guest agent, the module's reload command)",
);
for (const r of results) {
  console.log(
    `  ${r.name.padEnd(11)} ${s(r.figures.set)} = ${s(r.figures.set - r.figures.agent)} kattach + ${
      s(r.figures.agent)
    } agent request`,
  );
}
// The goals, one line each (the lead's quiet-machine re-run reads these).
console.log("");
for (const r of results.slice(1)) {
  const x = r.figures.ready / web;
  // postgresql-disk is PostgreSQL as a user keeps data (a first boot, the guest formats the new
  // disk): measured beside the goal, which is the module's ready as the catalogue defines it
  const what = r.name === "postgresql-disk" ? "with a data disk:" : "goal:";
  console.log(
    `${what} ${r.name} ready / web = ${x.toFixed(2)} (≤ 2): ${x <= 2 ? "met" : "not met"}  (${
      s(r.figures.ready)
    } against ${s(web)}; medians of ${rounds}, load ${load})`,
  );
}
for (const r of results) {
  console.log(
    `${
      r.name === "postgresql-disk" ? "with a data disk:" : "goal:"
    } reload visible ≤ 1 s: ${r.name} ${s(r.figures.visible)}: ${
      r.figures.visible <= 1000 ? "met" : "not met"
    }`,
  );
}
// PostgreSQL's first start with a new data disk copies the template cluster onto it (once; the
// database is then the instance's own and survives module updates): that copy, and that start
// against PostgreSQL's start without a data disk (the template under an overlay, nothing copied).
{
  const disk = results.find((r) => r.name === "postgresql-disk");
  const ram = results.find((r) => r.name === "postgresql");
  if (disk && ram) {
    console.log(
      `data disk: PostgreSQL's first start copies the template cluster: copy ${
        s(disk.figures.copy)
      } (its console lines); ready ${s(disk.figures.ready)} against ${
        s(ram.figures.ready)
      } without a data disk (overlay, no copy): +${
        s(disk.figures.ready - ram.figures.ready)
      }  (medians of ${rounds}, load ${load})`,
    );
  }
}
{
  for (const r of results) {
    console.log(`\n${r.name}: deploy → ready, first round (host clock; Δ since the line before)`);
    let prev = 0;
    for (const m of r.timeline) {
      console.log(
        `  ${s(m.at).padStart(8)}  +${(m.at - prev).toFixed(0).padStart(5)} ms  ${m.line}`,
      );
      prev = m.at;
    }
  }
}
